"""The layer map of DESIGN.md holds: the import-linter contracts in pyproject.toml (also run
by ``make lint``), and the moves that made them pass."""

import subprocess
import sys
from pathlib import Path

from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_load_demo_lives_with_the_app_that_knows_both_demos():
    # In services it had to reach the incident demo by a module name in a string.
    assert get_commands()["load_demo"] == "incidents"
