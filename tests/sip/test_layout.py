"""The shape of the ``sip`` package: a sans-IO core that never loads asyncio, and no import
cycles.

Everything in ``sip/`` outside ``sip/driver/`` must be usable without an event loop (the house
style's first rule: the core takes bytes, an address and ``now``). Two checks, because each
misses what the other sees: the source scan names the file that imports asyncio itself, and the
fresh interpreter catches asyncio arriving indirectly (through ``sip/__init__`` importing the
driver, or a third-party import).

No module of ``sip/`` may take part in an import cycle, counting imports made only for type
checking: a call machine that needs its core's type talks to it through a protocol it defines
(:class:`sip.call.CallCore`) instead of importing the core that imports it.
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


def _all_files() -> list[Path]:
    return sorted(SIP.rglob("*.py"))


def _core_files() -> list[Path]:
    return sorted(p for p in SIP.rglob("*.py") if not p.is_relative_to(DRIVER))


def _imported_modules(
    tree: ast.AST, package: str = "", modules: frozenset[str] = frozenset()
) -> set[str]:
    """Every module ``tree`` imports, anywhere in it (``if TYPE_CHECKING:`` and function bodies
    included). ``from a import b`` imports ``a.b`` when that is one of ``modules``, else ``a``
    (loading ``a`` only as the parent of ``a.b`` is the implicit parent import, not counted)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
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


def _import_graph() -> dict[str, set[str]]:
    """Module -> the ``sip`` modules it imports (implicit parent-package imports not counted)."""
    files = {_module_name(p): p for p in _all_files()}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        imported = _imported_modules(tree, package, frozenset(files))
        graph[name] = {m for m in imported if m in files and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_sip_module_is_in_an_import_cycle() -> None:
    graph = _import_graph()
    assert {"sip.call", "sip.midcall", "sip.ua"} <= graph.keys()
    assert "sip.call" in graph["sip.ua"]  # the graph does see imports
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    """Including through a TYPE_CHECKING import, as sip.call once imported sip.ua."""
    tree = ast.parse("if TYPE_CHECKING:\n    from sip.ua import SipCore\n")
    assert "sip.ua" in _imported_modules(tree)
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
