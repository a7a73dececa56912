"""The README's examples stay true: every TOML block loads into the settings model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.config import load_settings

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_config_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_toml_block_is_valid(block: str, tmp_path: Path) -> None:
    cfg = tmp_path / "example.toml"
    cfg.write_text(block)
    load_settings(cfg, environ={})
