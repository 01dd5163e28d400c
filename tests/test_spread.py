"""Focal onset and contiguous spread: level by level within a region, region to region, and the
bulbar region's resistance to spread from below (:mod:`progression.processes.hazard`).

What must hold: the origin starts at the process onset and nothing starts before it; no node
starts later than a neighbour plus the delay between them (shortest paths); with no level delay
and no bulbar resistance, every muscle starts with its compartment, exactly as the compartment
spread does; a positive level delay makes a hand onset reach the diaphragm later than the hand;
spread into the bulbar region takes ``bulbar_resistance`` times the delay; and each pair of
regions' delay is the patient's own delay times its scatter.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from progression.body import (
    COMPARTMENTS,
    CONTIGUITY,
    LEVEL_EDGES,
    LEVEL_NODES,
    SPREAD_SHARE,
    default_muscles,
)
from progression.processes import hazard
from progression.state import draw_latent, focal_levels
from tests.conftest import small

MUSCLES = default_muscles()
N_EDGES = len(CONTIGUITY)


def _delays(seed: int, n: int):
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(0.5, 30.0, (n, N_EDGES)),
        rng.uniform(0.5, 10.0, (n, N_EDGES)),
        rng.uniform(0.0, 5.0, n),
        rng.uniform(0.0, 12.0, n),
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), resistance=st.floats(0.5, 4.0))
def test_level_onsets_are_shortest_paths_from_the_origin(seed: int, resistance: float) -> None:
    n = 50
    rostro, contra, level, start = _delays(seed, n)
    origin = np.random.default_rng(seed + 1).integers(0, len(LEVEL_NODES), n)
    none = np.full(n, -1)
    onset = hazard.level_onsets(origin, start, rostro, contra, level, none, start, resistance)
    rows = np.arange(n)
    assert np.array_equal(onset[rows, origin], start)
    assert (onset >= start[:, None] - 1e-12).all() and np.isfinite(onset).all()
    for a, b, kind, e in LEVEL_EDGES:
        if kind == "level":
            w = level
        elif kind == "contralateral":
            w = contra[:, e]
        else:
            w = rostro[:, e] * SPREAD_SHARE[e]
        into_bulbar = COMPARTMENTS[LEVEL_NODES[a][0]][0] == "bulbar"
        assert (onset[:, b] <= onset[:, a] + w + 1e-9).all()
        assert (onset[:, a] <= onset[:, b] + w * (resistance if into_bulbar else 1.0) + 1e-9).all()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_without_level_delay_every_muscle_starts_with_its_compartment(seed: int) -> None:
    n = 40
    rostro, contra, _, start = _delays(seed, n)
    rng = np.random.default_rng(seed + 2)
    origin_c = rng.integers(0, len(COMPARTMENTS), n)
    node = np.array([
        rng.choice([i for i, (c, _) in enumerate(LEVEL_NODES) if c == oc]) for oc in origin_c
    ])
    jump_c = np.where(rng.uniform(size=n) < 0.3, rng.integers(0, len(COMPARTMENTS), n), -1)
    jump_node = np.array([
        -1 if jc < 0 else [i for i, (c, _) in enumerate(LEVEL_NODES) if c == jc][0]
        for jc in jump_c
    ])
    jump_delay = rng.uniform(0, 20, n)
    by_level = hazard.level_onsets(
        node, start, rostro, contra, np.zeros(n), jump_node, jump_delay
    )
    by_compartment = hazard.spread_onsets(origin_c, start, rostro, contra, jump_c, jump_delay)
    for m in MUSCLES:
        np.testing.assert_allclose(
            by_level[:, list(m.levels)].min(axis=1), by_compartment[:, m.compartment]
        )


def test_spread_into_the_bulbar_region_takes_the_resistance_times_the_delay() -> None:
    n = 5
    cervical_left = COMPARTMENTS.index(("cervical", "left"))
    bulbar = COMPARTMENTS.index(("bulbar", "midline"))
    rostro = np.full((n, N_EDGES), 10.0)
    contra = np.full((n, N_EDGES), 100.0)  # no way round through the other side
    start, none = np.zeros(n), np.full(n, -1)
    origin = np.full(n, cervical_left)
    up = hazard.spread_onsets(origin, start, rostro, contra, none, start, bulbar_resistance=2.5)
    assert np.allclose(up[:, bulbar], 25.0)
    down = hazard.spread_onsets(
        np.full(n, bulbar), start, rostro, contra, none, start, bulbar_resistance=2.5
    )
    assert np.allclose(down[:, cervical_left], 10.0)


def test_focal_onset_is_a_limb_level_not_the_diaphragm() -> None:
    names = {c: [LEVEL_NODES[i][1] for i in focal_levels(MUSCLES, c)]
             for c in range(len(COMPARTMENTS))}
    assert names[COMPARTMENTS.index(("cervical", "left"))] == ["C5", "C6", "C7", "C8", "T1"]
    assert names[COMPARTMENTS.index(("lumbosacral", "right"))] == ["L2", "L3", "L4", "L5", "S1"]
    assert names[COMPARTMENTS.index(("bulbar", "midline"))] == ["bulbar"]


def test_a_hand_onset_reaches_the_diaphragm_later_than_the_hand() -> None:
    s = small(patients=2000)
    lat = draw_latent(s, np.arange(2000))
    muscles = s.muscles()
    col = {(m.name, m.side): i for i, m in enumerate(muscles)}
    left = lat.onset_compartment == COMPARTMENTS.index(("cervical", "left"))
    hand = lat.lmn_onset[left, col["APB", "left"]]
    diaphragm = lat.lmn_onset[left, col["diaphragm", "left"]]
    first = hand <= lat.lmn_onset[left].min(axis=1)  # onset at C8-T1: a hand onset
    assert 0.2 < first.mean() < 0.6  # two of the five arm levels
    assert (diaphragm[first] > hand[first]).all()
    assert np.median(diaphragm[first] - hand[first]) > 2.0  # months: C8 to C5, level by level
    flat = small(patients=2000, **{"disease.lmn.level_delay_months": 0.0})
    lat0 = draw_latent(flat, np.arange(2000))
    assert np.array_equal(lat0.lmn_onset[left, col["APB", "left"]],
                          lat0.lmn_onset[left, col["diaphragm", "left"]])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), sigma=st.floats(0.0, 2.0))
def test_region_delays_scatter_around_the_patients_delay(seed: int, sigma: float) -> None:
    """Each pair of regions takes the patient's delay times ``exp(sigma z)``, within bounds:
    with no scatter every pair takes the patient's delay exactly, and the pairs' log delays
    differ from the patient's by ``sigma z``."""
    rng = np.random.default_rng(seed)
    patient = rng.uniform(1.0, 40.0, 50)
    z = rng.standard_normal((50, N_EDGES))
    d = hazard.region_delays(patient, z, sigma, (0.0, np.inf))
    np.testing.assert_allclose(np.log(d / patient[:, None]), sigma * z, atol=1e-12)
    assert np.array_equal(hazard.region_delays(patient, z, 0.0, (0.0, np.inf)),
                          np.repeat(patient[:, None], N_EDGES, axis=1))
    capped = hazard.region_delays(patient, z, sigma, (2.0, 30.0))
    assert capped.min() >= 2.0 and capped.max() <= 30.0
