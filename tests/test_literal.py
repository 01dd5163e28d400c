"""The literal model (one Mesa agent per motor unit) and the fast engine agree in distribution.

Both run the same Scenario on a reduced body map (APB, TA and diaphragm, both sides) for 24
months. They simulate *different* patients (engine ids 0..199, literal ids 100000..100199): every
random number of a patient is keyed by (scenario seed, patient id), and the literal model draws its
own neuron thresholds from numpy Generators, so the two samples are independent and a two-sample
Kolmogorov-Smirnov test (scipy.stats.ks_2samp) is valid. At months 6, 12 and 24 we compare, per
muscle, the living units, the fibres of living units, the orphaned and the atrophied fibres
(the last two among living patients: the engine keeps ageing a dead patient's orphans), the UMN
integrity per compartment, and the months of symptom onset and death.

Significance: family-wise alpha = 0.01 per comparison, Bonferroni-corrected over all its KS
tests. Seeds are fixed (scenario seed 20261125), so the outcome is deterministic.

Two scenarios: the shipped ALS natural history (realistic between-patient spread), and a
*controlled* one where every patient has the same parameters and a lumbosacral onset, so the
unit-level processes (threshold deaths, adoption, atrophy window) dominate the variance and small
departures are visible: a 10% faster hazard, or orphans atrophying one step late, are rejected.
The last tests check that the comparison does reject a literal model that is wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp

from progression.literal import LiteralCohort, time_literal, unit_steps_per_second
from progression.model import CohortModel
from tests.conftest import small

SEED = 20261125
ALPHA = 0.01  # family-wise, per comparison (Bonferroni over its KS tests)
MONTHS = (6, 12, 24)
PATIENTS = 200
ENGINE_IDS = np.arange(PATIENTS)
LITERAL_IDS = 100_000 + np.arange(PATIENTS)  # disjoint from the engine's: independent samples
NEVER = 1e6  # stands for "not yet" (inf) in onset and death months

REDUCED = {
    "body.muscles": ["APB", "TA", "diaphragm"],
    "time.duration_months": max(MONTHS),
    "cohort.seed": SEED,
}
#: Every patient alike: one onset region, constant speeds, delays, capacity and time constant;
#: slow sprouting and a short atrophy window so that atrophy happens within the run.
CONTROLLED = {
    **REDUCED,
    "cohort.onset_region": {"bulbar": 0.0, "cervical": 0.0, "thoracic": 0.0, "lumbosacral": 1.0},
    "disease.lmn.speed": 0.06,
    "disease.lmn.spread_delay_months": 6.0,
    "disease.lmn.contralateral_delay_months": 3.0,
    "disease.lmn.noncontiguous_probability": 0.0,
    "disease.umn.speed": 0.04,
    "disease.umn.onset_month": 0.0,
    "disease.umn.spread_delay_months": 6.0,
    "disease.umn.contralateral_delay_months": 3.0,
    "disease.umn.noncontiguous_probability": 0.0,
    "reinnervation.capacity": 3.0,
    "reinnervation.time_constant_months": 2.0,
    "reinnervation.atrophy_window_months": 6,
    "mortality.gompertz_a_per_year": 0.0,
}


def shipped(patients: int = PATIENTS, **over):
    return small("als_natural_history", patients, **{**REDUCED, **over})


def controlled(patients: int = PATIENTS, **over):
    return small("als_natural_history", patients, **{**CONTROLLED, **over})


# -- observing both models the same way ----------------------------------------------------------


def _snapshot(units, fibres, orphans, atrophied, integrity, living, onset, death, healthy):
    """Per-patient quantities; fibres as fractions of healthy, to 1e-4 (the engine keeps
    fibres in float32, so an untouched muscle is 1 +- 1e-7 there and exactly 1 here)."""
    frac = lambda x: np.round(np.asarray(x, dtype=np.float64) / healthy, 4)  # noqa: E731
    return {
        "units": np.asarray(units),
        "fibres": frac(fibres),
        "orphans": frac(orphans),
        "atrophied": frac(atrophied),
        "integrity": np.asarray(integrity),
        "living": np.asarray(living, dtype=bool),
        "onset": np.where(np.isfinite(onset), onset, NEVER),
        "death": np.where(np.isfinite(death), death, NEVER),
    }


def observe_engine(scenario, ids) -> dict[int, dict[str, np.ndarray]]:
    """Step the engine month by month; snapshots at MONTHS."""
    c = CohortModel(scenario, ids, scenario.arm_names[0])
    out = {}
    for month in range(1, max(MONTHS) + 1):
        c.step()
        if month in MONTHS:
            s = c.state
            out[month] = _snapshot(
                s.units_alive_per_muscle(c.starts),
                s.fibres_per_muscle(c.starts),
                s.orphans.sum(axis=2),
                s.atrophied,
                c.integrity(),
                s.living,
                c.symptom_onset,
                c.death_month,
                c.body.healthy_fibres,
            )
    return out


def observe_literal(scenario, ids) -> dict[int, dict[str, np.ndarray]]:
    """Step the literal model month by month; snapshots at MONTHS."""
    c = LiteralCohort(scenario, ids)
    healthy = np.array([m.units * m.innervation_ratio for m in scenario.muscles()])
    out = {}
    for month in range(1, max(MONTHS) + 1):
        c.step()
        if month in MONTHS:
            out[month] = _snapshot(
                c.units_alive(),
                c.fibres(),
                c.orphans(),
                c.atrophied(),
                c.integrity(),
                c.living(),
                c.symptom_onset(),
                c.death_month(),
                healthy,
            )
    return out


def ks_tests(a, b) -> list[tuple[float, float, str]]:
    """(p-value, KS statistic, label) of every comparison, smallest p first."""
    out = []
    for month in MONTHS:
        x, y = a[month], b[month]
        for q in ("units", "fibres", "integrity", "orphans", "atrophied"):
            among_living = q in ("orphans", "atrophied")
            for j in range(x[q].shape[1]):
                xs = x[q][x["living"], j] if among_living else x[q][:, j]
                ys = y[q][y["living"], j] if among_living else y[q][:, j]
                if len(xs) < 20 or len(ys) < 20:
                    continue
                r = ks_2samp(xs, ys, method="asymp")
                out.append((float(r.pvalue), float(r.statistic), f"m{month} {q}[{j}]"))
        for q in ("onset", "death"):
            r = ks_2samp(x[q], y[q], method="asymp")
            out.append((float(r.pvalue), float(r.statistic), f"m{month} {q}"))
    return sorted(out)


def _report(name: str, tests) -> str:
    worst = ", ".join(f"{label}: D={d:.3f} p={p:.2g}" for p, d, label in tests[:4])
    return f"{name}: {len(tests)} KS tests, per-test alpha {ALPHA / len(tests):.2g}; worst {worst}"


# -- fixtures: each model runs once per scenario ------------------------------------------------


@pytest.fixture(scope="module")
def engine_shipped():
    return observe_engine(shipped(), ENGINE_IDS)


@pytest.fixture(scope="module")
def engine_controlled():
    return observe_engine(controlled(), ENGINE_IDS)


# -- agreement ------------------------------------------------------------------------------------


def test_literal_and_engine_agree_on_the_shipped_als_scenario(engine_shipped):
    tests = ks_tests(engine_shipped, observe_literal(shipped(), LITERAL_IDS))
    print(_report("shipped ALS", tests))
    assert tests[0][0] >= ALPHA / len(tests), _report("shipped ALS", tests)


def test_literal_and_engine_agree_when_every_patient_is_alike(engine_controlled):
    literal = observe_literal(controlled(), LITERAL_IDS)
    tests = ks_tests(engine_controlled, literal)
    print(_report("controlled", tests))
    assert tests[0][0] >= ALPHA / len(tests), _report("controlled", tests)
    # the comparison has substance: units died, fibres atrophied, tracts thinned
    last = literal[max(MONTHS)]
    assert last["units"].mean() < 0.9 * engine_controlled[6]["units"].mean()
    assert last["atrophied"].max() > 0.1
    assert last["integrity"].min() < 0.9


# -- the comparison would catch a wrong literal model ---------------------------------------------

MUTANTS = {
    # the brief's example: the literal model's LMN hazard twice the engine's
    "doubled LMN speed": {"disease.lmn.speed": 2 * CONTROLLED["disease.lmn.speed"]},
    # an off-by-one in the atrophy rule: orphans lost one step after the window
    "atrophy one step late": {"reinnervation.atrophy_window_months": 7},
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_the_comparison_rejects_a_wrong_literal_model(engine_controlled, mutant):
    wrong = observe_literal(controlled(100, **MUTANTS[mutant]), LITERAL_IDS[:100])
    tests = ks_tests(engine_controlled, wrong)
    print(_report(mutant, tests))
    assert tests[0][0] < ALPHA / len(tests), _report(mutant, tests)


# -- the literal model's own invariants and its timing --------------------------------------------


def test_literal_model_keeps_fibres_capacities_and_no_revival():
    scenario = controlled(4, **{"reinnervation.atrophy_window_months": 3})
    c = LiteralCohort(scenario, np.arange(4))
    alive_before = [[u.alive for ms in p.muscles for u in ms.units] for p in c.patients]
    integrity_before = c.integrity()
    for _ in range(24):
        c.step()
        for i, p in enumerate(c.patients):
            for ms in p.muscles:
                total = ms.living_fibres + ms.orphan_fibres + ms.atrophied
                assert total == pytest.approx(ms.healthy, rel=1e-9)
                for u in ms.units:
                    assert u.fibres <= u.capacity * (1 + 1e-12)
                    assert u.alive or u.fibres == 0.0
            alive = [u.alive for ms in p.muscles for u in ms.units]
            assert not any(a and not b for a, b in zip(alive, alive_before[i], strict=True))
            alive_before[i] = alive
        assert (c.integrity() <= integrity_before).all()
        integrity_before = c.integrity()
    assert c.atrophied().sum() > 0 and c.units_alive().sum() < c.n_units * 4


def test_unit_steps_per_second_times_the_literal_model():
    scenario = shipped(3, **{"body.muscles": ["APB"]})
    timing = time_literal(scenario, 3, 2)
    assert timing["unit_steps"] == 3 * 2 * 400
    assert timing["unit_steps_per_second"] > 0
    assert unit_steps_per_second(scenario, 3, 1) > 0
