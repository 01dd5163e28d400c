"""Invariants of the engine: fibres accounted for, no revival, capacities, monotone tracts,
pure phenotypes, reproducibility and chunk independence, exact threshold deaths."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from progression.literal import LiteralCohort
from progression.model import CohortModel, simulate_chunk
from progression.processes import umn
from tests.conftest import small

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run_checking(cohort: CohortModel, steps: int) -> None:
    """Step a cohort and check every invariant after every step."""
    s = cohort.state
    healthy = cohort.body.healthy_fibres
    capacity = cohort.capacity_scale * cohort.body.base
    alive_before = s.alive.copy()
    umn_before = cohort.integrity()
    release_before = s.umn_release.copy()
    for _ in range(steps):
        cohort.step()
        living = s.fibres_per_muscle(cohort.starts)
        accounted = living + s.orphans.sum(axis=2) + s.atrophied
        np.testing.assert_allclose(accounted, np.broadcast_to(healthy, accounted.shape), rtol=2e-5)
        assert not (s.alive & ~alive_before).any(), "a dead unit revived"
        assert (s.fibres[~s.alive] == 0).all(), "a dead unit kept fibres"
        assert (s.fibres <= capacity * (1 + 1e-5) + 1e-3).all(), "a unit outgrew its capacity"
        assert (s.orphans >= -1e-3).all()
        u = cohort.integrity()
        np.testing.assert_array_equal(u, umn.integrity(s.umn_alive))  # kept with the axons
        assert (u <= umn_before + 1e-12).all(), "UMN integrity rose"
        # Spinal release follows the tract loss, never ahead of it and never back.
        assert (s.umn_release <= 1 - u + 1e-12).all(), "release ahead of the tract loss"
        assert (s.umn_release >= release_before - 1e-12).all(), "release fell"
        alive_before, umn_before, release_before = s.alive.copy(), u, s.umn_release.copy()


@FAST
@given(
    speed=st.floats(0.01, 0.5),
    capacity=st.floats(1.0, 9.0),
    tau=st.floats(0.2, 6.0),
    window=st.integers(1, 24),
    step=st.sampled_from([0.25, 0.5, 1.0]),
    sick=st.floats(0.0, 4.0),
)
def test_fibres_conserved_and_units_never_revive(speed, capacity, tau, window, step, sick):
    scenario = small(
        patients=6,
        **{
            "disease.lmn.speed": speed,
            "reinnervation.capacity": capacity,
            "reinnervation.time_constant_months": tau,
            "reinnervation.atrophy_window_months": window,
            "reinnervation.sick_exponent": sick,
            "time.step_months": step,
        },
    )
    cohort = CohortModel(scenario, np.arange(6), "natural_history")
    _run_checking(cohort, steps=int(24 / step))


def test_pma_has_no_umn_loss_and_pls_no_lmn_loss():
    pma = CohortModel(
        small("als_natural_history", 20, **{"phenotypes.ALS.processes": ["lmn"]}),
        np.arange(20),
        "natural_history",
    )
    pls = CohortModel(
        small("als_natural_history", 20, **{"phenotypes.ALS.processes": ["umn"]}),
        np.arange(20),
        "natural_history",
    )
    for _ in range(36):
        pma.step()
        pls.step()
    assert (pma.integrity() == 1).all()
    assert not pma.state.alive.all()
    assert pls.state.alive.all()
    assert (pls.integrity() < 1).any()


def _equal(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name


def test_same_scenario_and_seed_give_identical_tables():
    scenario = small(patients=12)
    _equal(
        simulate_chunk(scenario, np.arange(12)).tables,
        simulate_chunk(scenario, np.arange(12)).tables,
    )
    other = small(patients=12, **{"cohort.seed": 7})
    assert (
        not simulate_chunk(other, np.arange(12))
        .tables["patients"]
        .equals(simulate_chunk(scenario, np.arange(12)).tables["patients"])
    )


def test_a_patient_does_not_depend_on_its_chunk():
    scenario = small(patients=12)
    whole = simulate_chunk(scenario, np.arange(12)).tables
    part = simulate_chunk(scenario, np.arange(7, 12)).tables
    for name, table in part.items():
        ids = pa.compute.is_in(whole[name]["patient_id"], pa.array(np.arange(7, 12)))
        assert whole[name].filter(ids).equals(table), name


def test_threshold_deaths_are_exact_for_any_step():
    """LMN deaths depend on the hazard alone, so units alive at whole months agree exactly
    whatever the step (no respiratory muscles, no background deaths to end a timeline)."""
    common = {
        "body.muscles": ["APB", "ADM", "TA"],
        "mortality.gompertz_a_per_year": 0.0,
        "visits.interval_months": 3,
    }
    alive = {}
    for step in (1.0, 0.5, 0.25):
        c = CohortModel(
            small(patients=10, **common, **{"time.step_months": step}),
            np.arange(10),
            "natural_history",
        )
        for _ in range(int(30 / step)):
            c.step()
        alive[step] = c.state.alive.copy()
    assert (alive[1.0] == alive[0.5]).all() and (alive[0.5] == alive[0.25]).all()
    assert not alive[1.0].all()


def test_reinnervation_converges_as_the_step_shrinks():
    common = {"body.muscles": ["APB", "TA"], "mortality.gompertz_a_per_year": 0.0}
    fibres = {}
    for step in (1.0, 0.25, 0.125):
        c = CohortModel(
            small(patients=10, **common, **{"time.step_months": step}),
            np.arange(10),
            "natural_history",
        )
        for _ in range(int(24 / step)):
            c.step()
        fibres[step] = c.state.fibres_per_muscle(c.starts)
    err_coarse = np.abs(fibres[1.0] - fibres[0.125]).max()
    err_fine = np.abs(fibres[0.25] - fibres[0.125]).max()
    assert err_fine < err_coarse
    np.testing.assert_allclose(
        fibres[0.25], fibres[0.125], rtol=0.05, atol=0.01 * fibres[0.125].max()
    )


def test_a_step_runs_the_phases_in_their_stated_order():
    """``CohortModel.PHASES`` is the order: every phase runs, each timed under its name."""
    cohort = CohortModel(small(patients=2), np.arange(2), "natural_history")
    assert cohort.respiration_now is cohort.respiration  # set before the first step
    cohort.step()
    assert list(cohort.timings) == [name for name, _ in CohortModel.PHASES]
    assert cohort.month == cohort.dt


@pytest.mark.parametrize("pattern", ["focal", "segmental", "length_dependent"])
def test_every_lmn_pattern_runs(pattern):
    extra = {"disease.lmn.pattern": pattern}
    if pattern == "segmental":
        extra["disease.lmn.segments"] = ["C5", "C6"]
    scenario = small(patients=8, **extra)
    tables = simulate_chunk(scenario, np.arange(8)).tables
    assert tables["patients"].num_rows == 8


@pytest.mark.parametrize("start", ["first_visit", 3.0])
def test_a_treated_patient_does_not_depend_on_its_chunk(start):
    scenario = small(
        patients=12,
        **{
            "treatments.drug.lmn_speed": 0.5,
            "treatments.drug.start": start,
            "cohort.arms.placebo.treatment": "none",
            "cohort.arms.drug.treatment": "drug",
        },
    )
    assert scenario.arm_names == ("placebo", "drug")
    whole = simulate_chunk(scenario, np.arange(12)).tables
    for pid in (0, 5, 11):
        alone = simulate_chunk(scenario, np.array([pid])).tables
        for name, table in alone.items():
            mask = pa.compute.equal(whole[name]["patient_id"], pid)
            assert whole[name].filter(mask).equals(table), (name, pid)
    drug = pa.compute.equal(whole["patients"]["arm"], "drug")
    placebo = whole["patients"].filter(pa.compute.invert(drug))
    treated = whole["patients"].filter(drug)
    assert placebo["lmn_speed"].equals(treated["lmn_speed"])  # common random numbers


@pytest.mark.parametrize("model", [CohortModel, LiteralCohort])
def test_a_finished_cohort_is_freed(model):
    """Nothing keeps a cohort (and its unit arrays) alive once it is dropped: mesa 3.3's
    class-level agent id counters did, and a worker grew by one chunk's memory per chunk."""
    scenario = small(patients=3)
    args = (scenario, np.arange(3)) + (("natural_history",) if model is CohortModel else ())
    cohort = model(*args)
    cohort.run(6) if model is LiteralCohort else cohort.run()
    ref = weakref.ref(cohort)
    del cohort
    gc.collect()
    assert ref() is None


@settings(max_examples=200, deadline=None)
@given(
    loss=st.floats(0, 1), previous=st.floats(0, 1), dt=st.floats(0.05, 3.0),
    steps=st.integers(1, 40),
)
def test_spinal_release_relaxes_towards_the_tract_loss(loss, previous, dt, steps):
    """umn.release: between its previous value and the loss, exponential in time whatever the
    step (n steps of dt are one step of n dt), and a constant loss is fully felt in time."""
    from progression.processes import umn

    prev = np.array([previous * loss])  # the release never runs ahead of the loss
    one = umn.release(prev, np.array([loss]), dt)
    assert prev[0] - 1e-12 <= one[0] <= loss + 1e-12
    r = prev
    for _ in range(steps):
        r = umn.release(r, np.array([loss]), dt)
    np.testing.assert_allclose(r, umn.release(prev, np.array([loss]), steps * dt), atol=1e-12)
    gap = loss - prev[0]
    expected = loss - gap * np.exp(-steps * dt / umn.SPASTICITY_MONTHS)
    np.testing.assert_allclose(r[0], expected, atol=1e-12)
