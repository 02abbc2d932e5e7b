"""The architecture of pyproject.toml's import-linter contracts holds, and asset keys come from one helper."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from etl_pipeline.asset_keys import KEY_PREFIX, asset_key
from etl_pipeline_tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "etl_pipeline"


def test_the_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_asset_keys_have_the_layer_then_the_prefix_then_the_table() -> None:
    assert asset_key("gold", "dim_date").path == ["gold", "medical", "dim_date"]


def test_the_key_prefix_is_spelled_only_in_the_asset_keys_module() -> None:
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == KEY_PREFIX:
                spelled.append((str(path.relative_to(REPO_ROOT)), node.lineno))
    assert [file for file, _ in spelled] == ["etl_pipeline/asset_keys.py"], spelled
