"""TMS from the tract state (:mod:`progression.exam.tms`): the formulas, their monotonicity,
healthy values with the published spread, and absent MEPs in a thinned tract."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from progression.body import COMPARTMENTS
from progression.exam import Examiner, tms
from progression.model import CohortModel, simulate_chunk
from progression.processes import umn
from progression.scenario import Exam
from tests.conftest import small

#: The shipped defaults.
V = umn.velocities(100)
W = tms.volley_weights(V, Exam().tms_volley_exponent)
R1, SAT = Exam().mep_threshold_drive, Exam().mep_saturation_rmt


# ------------------------------------------------------------------------------ the formulas


def test_formulas_read_as_written():
    assert np.allclose(tms.volley_weights(np.array([1.0, 3.0]), 2.0), [0.25, 2.25])
    alive = np.array([True, False, True])
    w = np.array([1.0, 2.0, 5.0])
    assert tms.drive(alive, w) == 6.0 / 8.0
    gamma = np.log(1 / R1) / np.log(SAT)
    assert tms.recruitment_exponent(R1, SAT) == gamma
    assert tms.recruited(1.0, R1, SAT) == R1  # the healthy threshold
    assert np.isclose(tms.recruited(SAT, R1, SAT), 1.0) and tms.recruited(2 * SAT, R1, SAT) == 1.0
    assert np.isclose(tms.recruited(1.2, R1, SAT), R1 * 1.2**gamma)
    # RMT rises as the drive thins, RMT0 * D ** (-1 / gamma), up to SAT * RMT0 at D = r1.
    assert np.isclose(tms.motor_threshold(50.0, 0.5, R1, SAT), 50 * 0.5 ** (-1 / gamma))
    assert np.isclose(tms.motor_threshold(50.0, R1, R1, SAT), 50 * SAT)
    assert np.isinf(tms.motor_threshold(50.0, R1 * 0.99, R1, SAT))
    assert tms.mep_present(np.array([99.9, 100.0, 100.1])).tolist() == [True, True, False]
    assert tms.latency_intensity(np.array([50.0, 90.0]), 1.2).tolist() == [60.0, 100.0]
    assert np.isclose(tms.required_drive(1.2, R1, SAT), R1 / (R1 * 1.2**gamma))
    # Onset: arrivals fastest first; the axon whose drive completes the need.
    assert tms.onset_velocity(alive, np.array([10.0, 20.0, 30.0]), w, 0.5) == 30.0
    assert tms.onset_velocity(alive, np.array([10.0, 20.0, 30.0]), w, 0.7) == 10.0
    assert np.isnan(tms.onset_velocity(alive, np.array([10.0, 20.0, 30.0]), w, 0.8))
    # CMCT = path / v + delay + own + noise, the path from the healthy value.
    path = (7.5 - tms.SYNAPTIC_DELAY_MS) * 60.0
    assert np.isclose(tms.cmct(40.0, 60.0, 7.5, 0.3, -0.1), path / 40 + 1.5 + 0.2)
    assert np.isclose(tms.cmct(60.0, 60.0, 7.5, 0.0, 0.0), 7.5)
    assert np.isclose(tms.subject_cmct_sd(1.3, 1.0, 0.5), np.sqrt(1.3**2 - 1 - 0.25))
    assert tms.subject_cmct_sd(1.0, 1.0, 1.0) == 0.0


def test_latency_drive_falls_back_to_maximal_output_then_to_all_that_survives():
    rmt0 = np.array([50.0, 50.0, 50.0])
    d = np.array([1.0, 0.3, 0.9 * R1])
    measured = np.array([50.0, 50.0, 95.0])
    need = tms.latency_drive(measured, rmt0, d, 1.2, R1, SAT)
    assert np.isclose(need[0], tms.required_drive(1.2, R1, SAT))
    # A thinned tract whose threshold was measured at the healthy value: 120% of it is not
    # enough; at maximal output (2x RMT0, saturated) the need is r1, within the 0.3 left.
    assert np.isclose(need[1], R1)
    # Less than r1 left (an MEP only through the noise of the measured threshold): all of it.
    assert need[2] == d[2]


def test_healthy_onset_is_the_harmonic_mean_over_the_measured_threshold():
    v_h, cov = tms.healthy_onset(V, W, 1.2, 47.3, 0.0, R1, SAT)
    exact = tms.onset_velocity(np.ones(len(V), bool), V, W, tms.required_drive(1.2, R1, SAT))
    assert np.isclose(v_h, exact) and np.isclose(cov, 0.0)
    v_n, cov_n = tms.healthy_onset(V, W, 1.2, 47.3, 3.5, R1, SAT)
    assert 0 < cov_n < 0.25 and 50 < v_n < 70  # fast axons (MODEL.md: 50-70 m/s)


def test_cmct_falls_from_120_to_140_percent_mt_as_published():
    """Jitsakulchaidej 2022: APB 7.8 -> 7.2 ms, EDB 14.3 -> 13.6 ms from 120% to 140% MT;
    the model (beta = 3, r1 = 0.11) gives 0.46 and 0.96 ms (beta = 4, r1 = 0.15: 0.37 and
    0.78); within a factor 2 of the published falls."""
    tract = np.ones(len(V), bool)
    for healthy, published in ((7.5, 0.6), (14.0, 0.7)):
        v120 = tms.onset_velocity(tract, V, W, tms.required_drive(1.2, R1, SAT))
        v140 = tms.onset_velocity(tract, V, W, tms.required_drive(1.4, R1, SAT))
        fall = tms.cmct(v120, v120, healthy, 0, 0) - tms.cmct(v140, v120, healthy, 0, 0)
        assert published / 2 <= fall <= published * 2, (healthy, fall)


# ------------------------------------------------------------------------------ monotonicity


def _fastest_first(k: int) -> np.ndarray:
    """A tract whose k fastest axons are dead."""
    alive = np.ones(len(V), bool)
    alive[len(V) - k :] = False
    return alive


def _tms_of(alive, w, rmt0, z, r1):
    d = tms.drive(alive, w)
    measured = tms.measured_threshold(tms.motor_threshold(rmt0, d, r1, SAT), z, 3.5)
    v_on = tms.onset_velocity(alive, V, w, tms.latency_drive(measured, rmt0, d, 1.2, r1, SAT))
    present = bool(tms.mep_present(measured))
    return present, float(tms.cmct(v_on, 60.0, 7.5, 0.0, 0.0)) if present else np.inf, measured


@settings(max_examples=80, deadline=None)
@given(
    k=st.integers(0, 99),
    extra=st.integers(1, 30),
    rmt0=st.floats(25, 85),
    z=st.floats(-3, 3),
    beta=st.floats(0, 8),
    r1=st.floats(0.1, 0.8),
)
def test_fewer_fast_axons_never_shorten_cmct_nor_make_an_mep_likelier(k, extra, rmt0, z, beta, r1):
    """For the same person and the same threshold-measurement noise ``z``, losing more of the
    fastest axons never lowers the threshold nor makes an MEP likelier; with a noise-free
    threshold (the clinic's stimulus then is exactly 120% of the true one) it never shortens
    the CMCT. (With noise a threshold measured low can push the stimulus to maximal output
    and shorten a latency: the examiner's variability, not the tract's.)"""
    w = tms.volley_weights(V, beta)
    more, fewer = _fastest_first(k), _fastest_first(min(k + extra, len(V)))
    p_more, _, t_more = _tms_of(more, w, rmt0, z, r1)
    p_fewer, _, t_fewer = _tms_of(fewer, w, rmt0, z, r1)
    assert t_fewer >= t_more and p_fewer <= p_more
    p_more, c_more, _ = _tms_of(more, w, rmt0, 0.0, r1)
    p_fewer, c_fewer, _ = _tms_of(fewer, w, rmt0, 0.0, r1)
    if p_fewer and p_more:
        assert c_fewer >= c_more - 1e-9


# ------------------------------------------------------------------------------ the cohort


def test_healthy_cohort_cmct_matches_the_body_map_and_its_published_spread():
    """Month-0 examinations of 600 healthy people (seed fixed): mean CMCT within 0.15 ms (hand)
    and 0.3 ms (foot) of the body map (standard errors about 0.04 and 0.07 ms), SD within 15%
    of the published 1.3 and 2.5 ms (Jitsakulchaidej 2022; the SD's standard error is about
    3%), and an MEP in every target."""
    n = 600
    scenario = small(patients=n, **{"visits.start": "degeneration",
                                     "time.duration_months": 1,
                                     "body.muscles": ["APB", "ADM", "TA", "EDB"]})
    m = pl.from_arrow(simulate_chunk(scenario, np.arange(n)).tables["muscles"])
    m = m.filter(pl.col("month") == 0)
    assert m["mep_present"].all()
    s = {r["muscle"]: r for r in m.group_by("muscle").agg(
        pl.col("cmct_ms").mean().alias("mean"), pl.col("cmct_ms").std().alias("sd")
    ).iter_rows(named=True)}
    for muscle, healthy, sd in (("APB", 7.5, 1.3), ("ADM", 7.5, 1.3), ("TA", 14.0, 2.5),
                                ("EDB", 14.0, 2.5)):
        assert abs(s[muscle]["mean"] - healthy) <= (0.15 if healthy < 10 else 0.3), muscle
        assert abs(s[muscle]["sd"] / sd - 1) <= 0.15, muscle
        assert tms.cmct_sd(healthy) == sd


def test_a_thinned_pls_tract_gives_absent_meps_in_most_patients():
    """A PLS cohort whose cervical and lumbosacral tracts have lost the fastest 60% of their
    axons (0.09 of the drive-weighted tract left, below the threshold drive r1 = 0.11) is
    examined: no MEP to APB or TA in most patients (>= 80%), and where a hand MEP remains its
    CMCT is beyond the healthy mean."""
    n = 200
    scenario = small("pls_natural_history", patients=n, **{"body.muscles": ["APB", "TA"]})
    cohort = CohortModel(scenario, np.arange(n), scenario.arm_names[0])
    alive = cohort.state.umn_alive
    k = 60  # the 60 fastest of 100 axons dead in every limb tract
    limbs = [i for i, (region, _) in enumerate(COMPARTMENTS)
             if region in ("cervical", "lumbosacral")]
    alive[:, limbs, :] = True
    alive[:, limbs, len(V) - k :] = False
    cohort.state.umn_integrity = umn.integrity(alive)  # kept with the axons (State)
    assert np.allclose(cohort.state.umn_integrity[:, limbs], 0.4)
    assert tms.drive(alive[0, limbs[0]], W) < scenario.exam.mep_threshold_drive
    ex = Examiner(scenario, cohort.body, cohort.ids)
    ex.examine(cohort, np.arange(n), 30.0)
    rows = ex.muscle_rows[0]
    absent = (rows["mep_present"] == False).reshape(n, -1)  # noqa: E712 (bools and None)
    assert absent.any(axis=1).mean() >= 0.8
    hand = rows["cmct_ms"].reshape(n, -1)[:, 0]
    assert (hand[np.isfinite(hand)] > 7.5).all()


def _onset_velocity_numpy(alive, v, w, need):
    """The readable formula the compiled :func:`tms.onset_velocity` must equal to the bit."""
    arrived = np.cumsum((alive * w)[..., ::-1], axis=-1) / w.sum()
    idx = (arrived < np.asarray(need, dtype=float)[..., None] - 1e-12).sum(axis=-1)
    vv = np.asarray(v, dtype=float)[::-1][np.minimum(idx, len(v) - 1)]
    return np.where(idx < len(v), vv, np.nan)


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(0, 6), k=st.integers(1, 120), p=st.floats(0.0, 1.0),
    exponent=st.floats(-2.0, 6.0), seed=st.integers(0, 2**32 - 1),
)
def test_compiled_onset_velocity_is_the_numpy_formula(n, k, p, exponent, seed):
    rng = np.random.default_rng(seed)
    v = umn.velocities(k)
    w = tms.volley_weights(v, exponent)
    alive = rng.random((n, 8, k)) < p
    need = rng.random((n, 8)) * rng.choice([0.5, 1.0, 2.0])
    need[rng.random((n, 8)) < 0.2] = 0.0
    if n:  # exactly an arrival, which the 1e-12 margin decides
        need[0, 0] = np.cumsum((alive[0, 0] * w)[::-1])[k // 2] / w.sum()
    want = _onset_velocity_numpy(alive, v, w, need)
    np.testing.assert_array_equal(tms.onset_velocity(alive, v, w, need), want)
    # a 1-D need over a 2-D tract sample, as healthy_onset calls it
    np.testing.assert_array_equal(
        tms.onset_velocity(alive[:, 0], v, w, need[:, 0]), want[:, 0]
    )
