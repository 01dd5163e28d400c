"""Power and sample size for trial endpoints: closed forms for longitudinal slope designs and
for survival, against which the simulated trials are checked.

All functions take ``alpha``, ``power`` and ``sided`` explicitly; ``sided=1`` tests one
direction at level ``alpha``, ``sided=2`` splits ``alpha`` between two tails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

_N = NormalDist()


def _z_sum(alpha: float, power: float, sided: int) -> float:
    if sided not in (1, 2):
        raise ValueError(f"sided must be 1 or 2, got {sided!r}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha!r}, {power!r}")
    return _N.inv_cdf(1 - alpha / sided) + _N.inv_cdf(power)


def _time_spread(times: Sequence[float]) -> float:
    """``sum (t_j - mean t)^2`` over the visit times."""
    t = [float(x) for x in times]
    if len(t) < 2:
        raise ValueError("at least two visit times are needed to estimate a slope")
    mean = sum(t) / len(t)
    return sum((x - mean) ** 2 for x in t)


def n_per_arm_compound_symmetry(
    delta: float,
    sigma2: float,
    rho: float,
    times: Sequence[float],
    alpha: float = 0.05,
    power: float = 0.8,
    sided: int = 1,
) -> int:
    """Patients per arm to detect a difference ``delta`` in mean slopes when the outcome has
    variance ``sigma2`` and exchangeable correlation ``rho`` between visits at ``times``.

    ``m = 2 (z_a + z_b)^2 sigma2 (1 - rho) / (sum (t - mean t)^2 delta^2)`` (Diggle, Heagerty,
    Liang and Zeger, Analysis of Longitudinal Data, 2nd ed. 2002, section 2.4), rounded up.
    """
    z = _z_sum(alpha, power, sided)
    m = 2 * z**2 * sigma2 * (1 - rho) / (_time_spread(times) * delta**2)
    return math.ceil(m - 1e-9)


def n_per_arm_random_slope(
    delta: float,
    sigma2_slope: float,
    sigma2_error: float,
    times: Sequence[float],
    alpha: float = 0.05,
    power: float = 0.8,
    sided: int = 2,
) -> int:
    """Patients per arm for a difference ``delta`` in mean slopes under a random-slope model.

    Each patient's least-squares slope has variance
    ``sigma2_slope + sigma2_error / sum (t - mean t)^2``;
    ``n = 2 (z_a + z_b)^2 var / delta^2`` (Edland 2009, Alzheimer Dis Assoc Disord 23:245),
    rounded up.
    """
    z = _z_sum(alpha, power, sided)
    var = sigma2_slope + sigma2_error / _time_spread(times)
    return math.ceil(2 * z**2 * var / delta**2 - 1e-9)


def events_for_hazard_ratio(
    hazard_ratio: float,
    alpha: float = 0.05,
    power: float = 0.8,
    sided: int = 2,
    allocation: float = 0.5,
) -> int:
    """Events needed to detect ``hazard_ratio`` with the log-rank test (Schoenfeld 1983,
    Biometrika 70:315): ``d = (z_a + z_b)^2 / (p (1 - p) log(HR)^2)``, rounded up."""
    if hazard_ratio <= 0 or hazard_ratio == 1:
        raise ValueError(f"hazard_ratio must be positive and not 1, got {hazard_ratio!r}")
    z = _z_sum(alpha, power, sided)
    d = z**2 / (allocation * (1 - allocation) * math.log(hazard_ratio) ** 2)
    return math.ceil(d - 1e-9)


def power_random_slope(
    n_per_arm: int,
    delta: float,
    sigma2_slope: float,
    sigma2_error: float,
    times: Sequence[float],
    alpha: float = 0.05,
    sided: int = 2,
) -> float:
    """Power of the slope comparison with ``n_per_arm`` patients (inverse of
    :func:`n_per_arm_random_slope`, normal approximation)."""
    var = sigma2_slope + sigma2_error / _time_spread(times)
    se = math.sqrt(2 * var / n_per_arm)
    return _N.cdf(abs(delta) / se - _N.inv_cdf(1 - alpha / sided))
