"""The fused numba kernel computes what the numpy phases compute."""

from __future__ import annotations

import numpy as np
import pytest

from progression.model import CohortModel
from tests.conftest import small


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"reinnervation.sick_exponent": 0.0, "time.step_months": 0.5},
        {"disease.lmn.speed": 0.3, "reinnervation.atrophy_window_months": 2},
    ],
)
def test_kernel_matches_numpy_phases(overrides):
    scenario = small(patients=25, **overrides)
    ids = np.arange(25)
    fast = CohortModel(scenario, ids, "natural_history", engine="kernel")
    ref = CohortModel(scenario, ids, "natural_history", engine="numpy")
    for _ in range(int(40 / scenario.time.step_months)):
        fast.step()
        ref.step()
        live = ref.state.living
        assert (fast.state.living == live).all()
        assert (fast.state.alive[live] == ref.state.alive[live]).all()
        np.testing.assert_allclose(
            fast.state.fibres[live], ref.state.fibres[live], rtol=1e-4, atol=0.05
        )
        np.testing.assert_allclose(
            fast.state.orphans[live], ref.state.orphans[live], rtol=1e-3, atol=0.05
        )
        np.testing.assert_allclose(fast.fibres_sum, ref.fibres_sum, rtol=1e-5)
        assert (fast.alive_count == ref.alive_count).all()
    assert not ref.state.alive.all()
