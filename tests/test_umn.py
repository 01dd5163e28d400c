"""The compiled UMN tract functions compute the readable numpy formulas, to the last bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from progression.processes import umn


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 7), m=st.integers(1, 9), k=st.integers(1, 130), p=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_integrity_is_the_mean(n, m, k, p, seed):
    alive = np.random.default_rng(seed).random((n, m, k)) < p
    got = umn.integrity(alive)
    assert got.shape == (n, m) and got.dtype == np.float64
    assert np.array_equal(got, alive.mean(axis=-1))
    # any leading shape, views and fancy-indexed rows
    assert np.array_equal(umn.integrity(alive[:, 0]), alive[:, 0].mean(axis=-1))
    assert np.array_equal(umn.integrity(alive[::2]), alive[::2].mean(axis=-1))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 9), m=st.integers(1, 9), k=st.integers(1, 130),
    seed=st.integers(0, 2**32 - 1),
)
def test_lose_axons_is_the_numpy_rule(n, m, k, seed):
    rng = np.random.default_rng(seed)
    threshold = (rng.exponential(size=(n, m, k)) / rng.random(k)).astype(np.float32)
    threshold[..., rng.random(k) < 0.1] = np.inf  # axons that carry no hazard
    hazard = rng.exponential(size=(n, m)) * rng.random()
    alive = rng.random((n, m, k)) < 0.8
    living = rng.random(n) < 0.7
    want = alive.copy()
    want[living] &= ~(hazard[living, :, None] > threshold[living])
    got = alive.copy()
    u = umn.lose_axons(hazard, threshold, got, living)
    assert np.array_equal(got, want)
    assert np.array_equal(u, want.mean(axis=-1))
    assert np.array_equal(got[~living], alive[~living])  # the dead's tracts are not touched
