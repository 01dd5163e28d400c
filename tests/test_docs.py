"""The README says what the code does: its schema section and its test command."""

from __future__ import annotations

import re
import subprocess
import sys

from progression.tables import schema_markdown
from tests.conftest import ROOT


def test_readme_schema_matches_the_tables():
    assert schema_markdown().strip() in (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.+?)\n```", readme)
    assert len(commands) >= 2
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_code_is_ruff_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "progression", "analysis", "tests", "benchmarks"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
