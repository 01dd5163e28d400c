"""Shared fixtures: small scenarios built from the shipped ones by key-path overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from progression.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def small(name: str = "als_natural_history", patients: int = 40, **overrides) -> Scenario:
    """A shipped scenario with a small cohort and any key-path overrides
    (``disease__lmn__speed__median=0.1`` or ``{"disease.lmn.speed.median": 0.1}``)."""
    over = {k.replace("__", "."): v for k, v in overrides.items()}
    return load_scenario(SCENARIOS / f"{name}.toml", patients=patients, overrides=over)


@pytest.fixture
def als_small() -> Scenario:
    return small()
