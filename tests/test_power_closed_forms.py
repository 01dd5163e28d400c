"""Closed-form sample sizes reproduce published tables."""

from __future__ import annotations

import pytest

from analysis.power import (
    events_for_hazard_ratio,
    n_per_arm_compound_symmetry,
    n_per_arm_random_slope,
    power_random_slope,
)

# Diggle, Heagerty, Liang & Zeger (2002), Table 2.3: delta 0.5, times (0, 2, 5), one-sided
# alpha 0.05, power 0.8; rows rho 0.2/0.5/0.8, columns sigma2 100/200/300.
DIGGLE = {
    0.2: (313, 625, 938),
    0.5: (196, 391, 586),
    0.8: (79, 157, 235),
}


@pytest.mark.parametrize("rho", sorted(DIGGLE))
def test_diggle_table(rho):
    for sigma2, expected in zip((100, 200, 300), DIGGLE[rho], strict=True):
        n = n_per_arm_compound_symmetry(0.5, sigma2, rho, (0, 2, 5), alpha=0.05, power=0.8, sided=1)
        assert n == expected


def test_random_slope_power_inverts_sample_size():
    args = dict(delta=0.3, sigma2_slope=0.5, sigma2_error=4.0, times=range(0, 13, 3))
    n = n_per_arm_random_slope(**args, alpha=0.05, power=0.9, sided=2)
    assert power_random_slope(n, **args, alpha=0.05, sided=2) >= 0.9
    assert power_random_slope(n - 1, **args, alpha=0.05, sided=2) < 0.9


def test_schoenfeld_events():
    # HR 0.75, two-sided 5%, 80% power, 1:1 -> 380 events (Schoenfeld 1983; common worked example)
    assert events_for_hazard_ratio(0.75, alpha=0.05, power=0.8, sided=2) == 380


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        n_per_arm_compound_symmetry(0.5, 100, 0.2, (0,), alpha=0.05, power=0.8, sided=1)
    with pytest.raises(ValueError):
        events_for_hazard_ratio(1.0, alpha=0.05, power=0.8, sided=2)
    with pytest.raises(ValueError):
        n_per_arm_random_slope(0.5, 1, 1, (0, 1), alpha=1.5, power=0.8, sided=2)
