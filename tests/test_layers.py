"""Dependencies run one way: engine <- studies -> analysis.

The engine (``progression`` outside ``progression.studies``) imports nothing from ``analysis``
or from the studies above it; ``analysis`` imports nothing from ``progression``; the studies may
import both. Checked on every module's source (imports inside functions included).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute imports; relative ones are resolved)."""
    names = set()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _forbidden(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(n for n in _imports(path) if any(n == p or n.startswith(p + ".")
                                                   for p in prefixes))


@pytest.mark.parametrize("path", _modules("progression"), ids=_name)
def test_the_engine_imports_no_analysis_and_no_study(path: Path) -> None:
    if "studies" in path.relative_to(ROOT).parts or path.name == "__main__.py":
        return  # the studies sit above both; ``python -m progression`` is the command line
    assert not _forbidden(path, ("analysis", "progression.studies")), path


@pytest.mark.parametrize("path", _modules("analysis"), ids=_name)
def test_analysis_imports_nothing_of_the_engine(path: Path) -> None:
    assert not _forbidden(path, ("progression",)), path


def test_the_check_can_fail(tmp_path: Path) -> None:
    bad = ROOT / "analysis" / "_layer_probe.py"
    try:
        bad.write_text("def f():\n    from progression.scenario import load_scenario\n")
        assert _forbidden(bad, ("progression",)) == ["progression.scenario",
                                                     "progression.scenario.load_scenario"]
    finally:
        bad.unlink()


def test_trial_design_reads_the_schema_defaults() -> None:
    """``analysis.endpoints`` reads scenario.toml as plain TOML with the schema's defaults."""
    from analysis.endpoints import SCENARIO_DEFAULTS
    from progression.scenario import Arm, Cohort, Trial

    arms = {f.name: f for f in Cohort.__dataclass_fields__.values()}["arms"].default_factory()
    assert list(arms) == list(SCENARIO_DEFAULTS["cohort.arms"])
    assert Arm().treatment == SCENARIO_DEFAULTS["cohort.arms.treatment"]
    interval = Trial.__dataclass_fields__["visit_interval_months"].default
    assert interval == SCENARIO_DEFAULTS["trial.visit_interval_months"]


@pytest.mark.parametrize(("module", "allowed"), [
    ("distributions", {"progression.random"}),
    ("validation", {"progression.distributions"}),
])
def test_the_sampler_and_the_validator_know_no_schema(module: str, allowed: set[str]) -> None:
    """``Dist`` and the generic TOML validator sit below the scenario schema, never above it."""
    ours = {n for n in _imports(ROOT / "progression" / f"{module}.py")
            if n.startswith("progression.")}
    assert all(any(n == a or n.startswith(a + ".") for a in allowed) for n in ours), ours


@pytest.mark.parametrize("path", _modules("progression") + _modules("analysis"),
                         ids=_name)
def test_no_private_name_crosses_modules(path: Path) -> None:
    """A module imports only public names of the project's other modules."""
    crossing = [
        f"{node.module}.{a.name}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in
        ("progression", "analysis")
        for a in node.names if a.name.startswith("_") and not a.name.startswith("__")
    ]
    assert not crossing, path
