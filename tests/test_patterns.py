"""LMN disease patterns: where the damage sits leaves its pattern on the muscles.

Segmental anterior horn disease (``scenarios/sma_segmental.toml``: L2-L4, as in adult spinal
muscular atrophy or polio) takes units from the muscles those segments supply, in proportion to
the share of each muscle's segments affected, and from no other muscle. Length-dependent axon
loss (the same file with ``disease.lmn.pattern = "length_dependent"``) takes the longest axons
first: distal muscles such as EDB before proximal ones such as biceps.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from progression.model import CohortModel, simulate_chunk
from progression.scenario import load_scenario
from tests.conftest import SCENARIOS

SMA = SCENARIOS / "sma_segmental.toml"
LENGTH_DEPENDENT = {"disease.lmn.pattern": "length_dependent", "disease.lmn.segments": None}


def _alive_fraction_by_month(scenario, months: int, every: int = 6) -> dict[int, dict[str, float]]:
    """Mean living-unit fraction per muscle name (both sides), every ``every`` months."""
    n = scenario.cohort.patients
    cohort = CohortModel(scenario, np.arange(n), scenario.arm_names[0])
    units = np.array([m.units for m in cohort.body.muscles])
    names = [m.name for m in cohort.body.muscles]
    out = {}
    for month in range(1, months + 1):
        cohort.step()
        if month % every == 0:
            frac = (cohort.state.units_alive_per_muscle(cohort.starts) / units).mean(axis=0)
            by_name: dict[str, list[float]] = {}
            for name, f in zip(names, frac, strict=True):
                by_name.setdefault(name, []).append(float(f))
            out[month] = {k: float(np.mean(v)) for k, v in by_name.items()}
    return out


def test_segmental_pattern_follows_the_affected_segments():
    scenario = load_scenario(SMA, patients=12)
    assert scenario.disease.lmn.pattern == "segmental"
    affected = set(scenario.disease.lmn.segments)
    share = {
        m.name: sum(s in affected for s in m.segments) / len(m.segments) for m in scenario.muscles()
    }
    assert share["quadriceps"] == 1 and 0 < share["TA"] < 1  # L2-L4 vs L4-L5
    frac = _alive_fraction_by_month(scenario, 60, every=60)[60]
    for name, s in share.items():
        if s == 0:
            assert frac[name] == 1.0, f"{name} has no affected segment but lost units"
        else:
            assert frac[name] < 0.95, f"{name} has affected segments but kept its units"
    # More of a muscle's segments affected, more units lost: quadriceps (3/3) before TA (1/2).
    assert frac["quadriceps"] < frac["TA"] < 1.0


def test_segmental_pattern_is_visible_in_the_muscles_table():
    scenario = load_scenario(
        SMA,
        patients=6,
        overrides={
            "visits.start": "degeneration",
            "visits.interval_months": 12,
            "time.duration_months": 48,
        },
    )
    muscles = pl.from_arrow(simulate_chunk(scenario, np.arange(6)).tables["muscles"])
    at = (
        muscles.filter(pl.col("month") == 48)
        .group_by("muscle")
        .agg(pl.col("units_alive_fraction").mean())
    )
    frac = dict(zip(at["muscle"], at["units_alive_fraction"], strict=True))
    assert frac["quadriceps"] < frac["TA"] < 1.0
    for name in ("tongue", "APB", "FDI", "ADM", "biceps", "diaphragm", "intercostals", "EDB"):
        assert frac[name] == 1.0, name
    baseline = muscles.filter(pl.col("month") == 0)
    assert baseline.height > 0 and (baseline["units_alive_fraction"] == 1.0).all()


def test_length_dependent_pattern_is_distal_first():
    scenario = load_scenario(SMA, patients=12, overrides=LENGTH_DEPENDENT)
    assert scenario.disease.lmn.pattern == "length_dependent"
    course = _alive_fraction_by_month(scenario, 60, every=6)
    # EDB (longest axons, 108 cm) has lost a tenth of its units before biceps (34 cm) has lost
    # a twentieth, and at every month it has lost more.
    first_edb = min(m for m, f in course.items() if f["EDB"] < 0.9)
    assert all(f["biceps"] > 0.95 for m, f in course.items() if m <= first_edb)
    assert all(f["EDB"] < f["biceps"] for f in course.values())
    # Loss is ordered by axon length across the body map.
    length = {m.name: m.axon_length_cm for m in scenario.muscles()}
    end = course[60]
    by_length = sorted(end, key=lambda name: -length[name])
    assert by_length[0] == "EDB" and by_length[-1] == "tongue"
    lost = [1 - end[name] for name in by_length]
    ranks_agree = np.corrcoef(np.argsort(np.argsort(lost)), np.arange(len(lost))[::-1])[0, 1]
    assert ranks_agree > 0.8, dict(zip(by_length, lost, strict=True))


@pytest.mark.parametrize("segments", [["C5", "C6"], ["L2", "L3", "L4"]])
def test_segmental_hazard_share_matches_segments(segments):
    """Any chosen segments: a muscle loses units iff one of its segments is affected."""
    scenario = load_scenario(
        SMA, patients=6, overrides={"disease.lmn.segments": segments, "disease.lmn.speed": 0.05}
    )
    frac = _alive_fraction_by_month(scenario, 36, every=36)[36]
    for m in scenario.muscles():
        hit = any(s in segments for s in m.segments)
        assert (frac[m.name] < 1.0) == hit, (m.name, m.segments, frac[m.name])
