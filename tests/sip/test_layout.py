"""The shape of the ``sip`` package: a sans-IO core that never loads asyncio.

Everything in ``sip/`` outside ``sip/driver/`` must be usable without an event loop (the house
style's first rule: the core takes bytes, an address and ``now``). Two checks, because each
misses what the other sees: the source scan names the file that imports asyncio itself, and the
fresh interpreter catches asyncio arriving indirectly (through ``sip/__init__`` importing the
driver, or a third-party import).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIP = ROOT / "sip"
DRIVER = SIP / "driver"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _core_files() -> list[Path]:
    return sorted(p for p in SIP.rglob("*.py") if not p.is_relative_to(DRIVER))


def _imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_core_files_exist() -> None:
    """The lists below are not empty by accident (a moved package would make them pass)."""
    names = {_module_name(p) for p in _core_files()}
    assert {"sip", "sip.message", "sip.sdp", "sip.ua", "sip.call"} <= names
    assert (DRIVER / "__init__.py").exists()


def test_no_core_module_imports_asyncio() -> None:
    offenders = []
    for path in _core_files():
        imported = _imported_modules(ast.parse(path.read_text(), str(path)))
        if any(m == "asyncio" or m.startswith("asyncio.") for m in imported):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"asyncio imported outside sip/driver/: {offenders}"


def test_importing_the_core_loads_no_asyncio() -> None:
    """Each core module, imported in turn into a fresh interpreter, leaves asyncio unloaded."""
    names = [_module_name(p) for p in _core_files()]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "    if 'asyncio' in sys.modules:\n"
        "        sys.exit('asyncio loaded by importing ' + name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_the_driver_is_where_asyncio_lives() -> None:
    """The check above can fail: importing the driver does load asyncio."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, sip.driver; assert 'asyncio' in sys.modules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
