"""Confidence intervals and the bootstrap, on numpy arrays: what the calibration estimators
(:mod:`analysis.estimators`) attach to each simulated figure.

Closed forms where there are any (mean: t; median: binomial order statistics; share: Wilson),
otherwise a percentile interval over bootstrap replicates that resample patients
(:func:`cluster_bootstrap`, :data:`BOOTSTRAP` replicates, fixed seed, so the same tables always
give the same interval), of statistics written with weights (:func:`weighted_mean`,
:func:`weighted_median`) or of the Kaplan-Meier median of plain arrays (:func:`km_median`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np

from analysis.survival import first_below_half

#: Bootstrap replicates for intervals that have no closed form.
BOOTSTRAP = 200
#: Seed of the bootstrap (fixed: the same tables always give the same interval).
BOOTSTRAP_SEED = 20261125
#: The standard normal's 97.5% quantile (two-sided 95% intervals).
Z95 = NormalDist().inv_cdf(0.975)


def bootstrap_rng() -> np.random.Generator:
    """A new generator seeded with :data:`BOOTSTRAP_SEED`."""
    return np.random.default_rng(BOOTSTRAP_SEED)


def km_median(months: np.ndarray, died: np.ndarray) -> float:
    """Kaplan-Meier median of right-censored times (nan if survival never reaches 0.5).

    The rule of :func:`analysis.survival.km_medians` (:func:`~analysis.survival.first_below_half`).
    """
    t = np.asarray(months, dtype=float)
    d = np.asarray(died, dtype=bool)
    if not len(t):
        return math.nan
    times, inv = np.unique(t, return_inverse=True)
    n_at = np.bincount(inv, minlength=len(times))
    events = np.bincount(inv, weights=d, minlength=len(times))
    at_risk = len(t) - np.cumsum(n_at) + n_at
    median = first_below_half(times, np.cumprod(1.0 - events / at_risk), events)
    return math.nan if median is None else median


def percentile_ci(samples: np.ndarray) -> tuple[float, float]:
    """2.5% and 97.5% quantiles of the finite replicates (nan with fewer than 10)."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) < 10:
        return math.nan, math.nan
    return float(np.quantile(s, 0.025)), float(np.quantile(s, 0.975))


def mean_ci(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95% t interval (normal beyond 30)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if n < 2:
        return m, math.nan, math.nan
    from scipy.stats import t as student

    half = float(student.ppf(0.975, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return m, m - half, m + half


def median_ci(x: np.ndarray) -> tuple[float, float, float]:
    """Median and its distribution-free 95% interval (binomial order statistics)."""
    x = np.sort(np.asarray(x, dtype=float)[np.isfinite(x)])
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(x))
    half = Z95 * math.sqrt(n) / 2
    lo, hi = int(math.floor(n / 2 - half)), int(math.ceil(n / 2 + half))
    if lo < 0 or hi >= n:
        return med, math.nan, math.nan
    return med, float(x[lo]), float(x[hi])


def share_ci(k: int, n: int) -> tuple[float, float, float]:
    """Share k/n with its Wilson 95% interval."""
    if n == 0:
        return math.nan, math.nan, math.nan
    p = k / n
    den = 1 + Z95**2 / n
    c = (p + Z95**2 / (2 * n)) / den
    h = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / den
    return p, c - h, c + h


def cluster_bootstrap(
    groups: np.ndarray, stat: Callable[[np.ndarray], float], reps: int = BOOTSTRAP
) -> np.ndarray:
    """Bootstrap replicates of ``stat(weights)`` resampling clusters (patients).

    ``groups`` is each row's cluster index (0..k-1); ``stat`` takes per-row weights (how many
    times the row's cluster was drawn) and returns the statistic.
    """
    k = int(groups.max()) + 1 if len(groups) else 0
    rng = bootstrap_rng()
    out = np.empty(reps)
    for b in range(reps):
        counts = np.bincount(rng.integers(0, k, k), minlength=k)
        out[b] = stat(counts[groups].astype(float))
    return out


def cluster_codes(ids: np.ndarray) -> np.ndarray:
    """Each row's cluster index 0..k-1 from its id (e.g. patient_id), for
    :func:`cluster_bootstrap`."""
    return np.unique(ids, return_inverse=True)[1]


def weighted_mean(x: np.ndarray, w: np.ndarray) -> float:
    """Mean of ``x`` with weights ``w`` (nan if they sum to 0)."""
    s = w.sum()
    return float((x * w).sum() / s) if s > 0 else math.nan


def weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    """The lower weighted median of ``x`` (nan without positive weight)."""
    keep = w > 0
    x, w = x[keep], w[keep]
    if not len(x):
        return math.nan
    order = np.argsort(x, kind="stable")
    x, c = x[order], np.cumsum(w[order])
    return float(x[np.searchsorted(c, c[-1] / 2)])


__all__ = [
    "BOOTSTRAP",
    "BOOTSTRAP_SEED",
    "Z95",
    "bootstrap_rng",
    "cluster_bootstrap",
    "cluster_codes",
    "km_median",
    "mean_ci",
    "median_ci",
    "percentile_ci",
    "share_ci",
    "weighted_mean",
    "weighted_median",
]
