"""The documentation says what the code does: the output schema, the code map and the README's
test command (the site itself: tests/test_docs_site.py; the scenario reference:
tests/test_scenario_reference.py)."""

from __future__ import annotations

import re
import subprocess
import sys

from progression.tables import schema_markdown
from tests.conftest import ROOT

DOCS = ROOT / "docs"


def test_the_schema_page_matches_the_tables():
    """The site's schema section is ``python -m progression.tables``'s output, verbatim."""
    page = (DOCS / "running" / "output.md").read_text()
    assert schema_markdown().strip() in page


def test_the_code_map_names_every_module():
    """The site's code map lists every module of the engine, the studies and analysis."""
    code_map = (DOCS / "development" / "code-map.md").read_text()
    named = set(re.findall(r"`([a-z_/]+)`", code_map))
    for package in ("progression", "analysis"):
        for path in (ROOT / package).rglob("*.py"):
            if path.stem in ("__init__", "__main__"):
                continue
            folder = path.parent.name + "/"
            assert path.stem in named or folder in named, path.relative_to(ROOT)


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
