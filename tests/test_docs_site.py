"""The documentation site builds in strict mode, and its guides run as written.

Each guide (``docs/guides/*.md``) is executed in order in a fresh folder: a fenced block with a
``title="FILE"`` is written to that file, ``bash`` blocks run in bash (``-euo pipefail``) and
``python`` blocks in one namespace per guide. A block preceded by ``<!-- not run: why -->`` is
not executed (it needs a cluster or an installation); its ``progression`` and
``python -m progression.cluster`` commands are parsed by the command line's own parser, its
``pip install '.[extra]'`` must name an extra of pyproject.toml, and Python blocks must compile
and import names that exist.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))
_FENCE = re.compile(
    r"^(?:<!-- not run: (?P<why>.+?) -->\n)?```(?P<lang>\w+)(?P<attrs>[^\n]*)\n(?P<code>.*?)^```$",
    re.M | re.S,
)


def blocks(text: str) -> list[dict]:
    """The fenced blocks of a page in order: language, title (a file), code, why not run."""
    out = []
    for m in _FENCE.finditer(text):
        title = re.search(r'title="([^"]+)"', m.group("attrs"))
        out.append({
            "lang": m.group("lang"),
            "title": title.group(1) if title else None,
            "code": m.group("code"),
            "skip": m.group("why"),
        })
    return out


def _commands(code: str) -> list[list[str]]:
    """Shell commands of a block: continuation lines joined, comments dropped, split at &&."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        out += [shlex.split(part) for part in line.split("&&")]
    return out


def check_not_run(block: dict) -> int:
    """Check a block that is not executed; return how many commands or imports were checked."""
    checked = 0
    if block["lang"] == "python":
        tree = ast.parse(block["code"])
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
                    checked += 1
        return checked
    from progression import cluster
    from progression.studies import cli

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for argv in _commands(block["code"]):
        if argv[0] == "progression":
            cli.build_parser().parse_args(argv[1:])
        elif argv[:3] == ["python", "-m", "progression.cluster"]:
            cluster.build_parser().parse_args(argv[3:])
        elif "pip" in argv[0] and argv[1] == "install":
            for target in argv[2:]:
                for extra in re.findall(r"\[(.+)\]", target):
                    assert extra in extras, f"no extra {extra!r} in pyproject.toml"
        else:
            continue
        checked += 1
    return checked


def run_page(path: Path, folder: Path) -> dict:
    """Run a page's blocks in ``folder``; return counts of what ran and what was checked."""
    (folder / "scenarios").symlink_to(ROOT / "scenarios")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    namespace: dict = {"__name__": "__guide__"}
    counts = {"files": 0, "bash": 0, "python": 0, "checked": 0}
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        for i, block in enumerate(blocks(path.read_text(encoding="utf-8"))):
            where = f"{path.name}, block {i + 1} ({block['lang']})"
            if block["skip"]:
                counts["checked"] += check_not_run(block)
            elif block["title"]:
                (folder / block["title"]).write_text(block["code"], encoding="utf-8")
                counts["files"] += 1
            elif block["lang"] == "bash":
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", block["code"]],
                    cwd=folder, env=env, capture_output=True, text=True,
                )
                assert result.returncode == 0, f"{where}:\n{result.stdout}\n{result.stderr}"
                counts["bash"] += 1
            elif block["lang"] == "python":
                exec(compile(block["code"], where, "exec"), namespace)
                counts["python"] += 1
    finally:
        os.chdir(cwd)
    return counts


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.stem)
def test_the_guide_runs_as_written(guide: Path, tmp_path: Path):
    counts = run_page(guide, tmp_path)
    assert counts["bash"] >= 2 and counts["python"] >= 2, counts
    if "<!-- not run:" in guide.read_text() and guide.stem == "researcher":
        assert counts["checked"] >= 5, counts  # the cluster commands and imports


def test_there_are_three_guides():
    assert [p.stem for p in GUIDES] == ["analyst", "researcher", "trial-designer"]


def test_a_failing_block_fails_the_page(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("```toml title=\"a.toml\"\nx = 1\n```\n\n```bash\ntest -f a.toml\nfalse\n```\n")
    (tmp_path / "run").mkdir()
    with pytest.raises(AssertionError, match="block 2"):
        run_page(page, tmp_path / "run")
    assert (tmp_path / "run" / "a.toml").read_text() == "x = 1\n"


def test_a_not_run_command_with_a_wrong_option_fails(tmp_path: Path):
    bad = {"lang": "bash", "skip": "cluster", "title": None,
           "code": "progression run x.toml --out y \\\n    --schedular tcp://h:1"}
    with pytest.raises(SystemExit):
        check_not_run(bad)
    good = dict(bad, code="progression run x.toml --out y \\\n    --scheduler tcp://h:1")
    assert check_not_run(good) == 1
    with pytest.raises(AssertionError, match="no extra"):
        check_not_run(dict(bad, code="pip install '.[clustr]'"))
    with pytest.raises(AssertionError):
        check_not_run({"lang": "python", "skip": "x", "title": None,
                       "code": "from progression.runner import rnu\n"})


def test_the_site_builds_in_strict_mode(tmp_path: Path):
    """A broken link, a missing page, a bad docstring reference or an undocumented scenario key
    fails the build."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reference = (tmp_path / "site" / "scenarios" / "reference" / "index.html").read_text()
    assert "drive_weakness" in reference and "<!-- scenario-reference -->" not in reference
