"""The examinations' compiled per-muscle sums equal the numpy formulas of the processes."""

from __future__ import annotations

import numpy as np
import pytest

from progression.exam import units
from progression.model import CohortModel
from progression.processes import excitability, lmn
from tests.conftest import small


def _numpy_sums(cohort: CohortModel, rows: np.ndarray):
    """The sums as whole-array numpy: sickness, margin, rate and enlargement per unit."""
    s, body, exc = cohort.state, cohort.body, cohort.scenario.excitability
    sick = lmn.sickness(
        s.lmn_hazard[rows].astype(np.float32)[:, body.muscle_of], s.threshold[rows]
    )
    margin = excitability.margin(sick.astype(np.float64), exc.margin_mv, exc.sickness_exponent)
    rate = excitability.discharge_rate(margin, exc.noise_mv, exc.max_rate_per_min)
    fibres = s.fibres[rows].astype(np.float64)
    rate = rate * (fibres / body.base) ** exc.enlargement_exponent
    alive = s.alive[rows]
    per = body.start[:-1]

    def add(x):
        return np.add.reduceat(np.where(alive, x, 0.0), per, axis=1)

    return add(np.ones_like(fibres)), add(fibres), add(fibres**2), add(rate)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"excitability.sickness_exponent": 1.7, "excitability.enlargement_exponent": 0.0},
        {"excitability.enlargement_exponent": 1.3, "disease.lmn.speed": 0.3},
    ],
)
def test_muscle_sums_match_numpy(overrides):
    scenario = small(patients=30, **overrides)
    cohort = CohortModel(scenario, np.arange(30), "natural_history")
    for _ in range(30):
        cohort.step()
    rows = np.flatnonzero(cohort.state.living)[::2]
    s, body, exc = cohort.state, cohort.body, scenario.excitability
    got = units.muscle_sums(
        rows, s.lmn_hazard, body.start, s.threshold, s.alive,
        s.fibres, body.base, exc.margin_mv, exc.sickness_exponent, exc.noise_mv,
        exc.max_rate_per_min, exc.enlargement_exponent,
    )
    want = _numpy_sums(cohort, rows)
    assert (got[0] == want[0]).all()
    for g, w in zip(got[1:], want[1:], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9)
    # The state is part-way through the disease: some units dead, some enlarged and sick.
    assert (~s.alive[rows]).any()
    assert (s.alive[rows] & (s.fibres[rows] > body.base)).any()
    assert (got[3][got[0] > 0] > 0).all()  # every muscle with a living unit discharges


def _fasciculations_numpy(rate_per_min, u, z, minutes):
    """The whole-array formula the compiled inversion of ``tests.fasciculations`` replaced."""
    lam = rate_per_min * minutes
    small = lam < 10
    k = np.zeros_like(lam)
    cdf = np.exp(-lam)
    p = cdf.copy()
    for i in range(1, 40):
        more = small & (u > cdf)
        k[more] = i
        p = p * lam / i
        cdf = cdf + p
    big = np.maximum(np.rint(lam + np.sqrt(lam) * z), 0)
    return np.where(small, k, big) / minutes


@pytest.mark.parametrize("seed", range(4))
def test_fasciculation_counts_are_the_numpy_formula(seed):
    from progression.exam import tests

    rng = np.random.default_rng(seed)
    rate = rng.exponential(size=(300, 18)) * rng.choice([0.01, 0.3, 2.0, 20.0], (300, 18))
    rate[0, :4] = [0.0, 10.0 / 3.0, np.nextafter(10.0 / 3.0, 0), 1e-300]
    u, z = rng.random((300, 18)), rng.normal(size=(300, 18))
    u[1, :3] = [1.0 - 1e-16, 1e-300, 0.5]
    for minutes in (1.0, 3.0):
        want = _fasciculations_numpy(rate, u, z, minutes)
        np.testing.assert_array_equal(tests.fasciculations(rate, u, z, minutes), want)
