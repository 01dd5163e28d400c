"""Electrophysiology from the state: CMAP, MUNE, MUNIX and needle EMG (MODEL.md section 7;
TMS is :mod:`progression.exam.tms`).

Pure functions of arrays, mostly of per-muscle sums over the living units
(:func:`progression.exam.units.muscle_sums`), visited patients x muscles.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Fibrillation grade thresholds on the orphan fraction (denervated, not yet reinnervated).
FIBRILLATION_THRESHOLDS = np.array([0.01, 0.03, 0.08, 0.20])


def cmap_factor(z: np.ndarray, cov: float) -> np.ndarray:
    """The recording's multiplicative CMAP noise (electrode placement, test-retest CoV ``cov``);
    every SMUP of the same recording shares it."""
    return np.maximum(1 + cov * z, 0.0)


def mune_mean_smup(
    fibres: np.ndarray,
    alive: np.ndarray,
    cmap_mv: np.ndarray,
    mv_per_fibre: float,
    subject: np.ndarray,
    u: np.ndarray,
    z: np.ndarray,
    smup_cov: float,
) -> np.ndarray:
    """MUNE = CMAP / mean single motor unit potential of a random sample of living units.

    The interim method (multiple point stimulation style, Brown 1972), kept as
    ``exam.mune_method = "mean_smup"`` (the default is incremental stimulation, :mod:`.scans`):
    ``u`` (patients, k) picks k living units, each SMUP measured with CoV ``smup_cov``.
    The bias emerges: a small sample of a skewed size distribution underestimates the mean.
    """
    count = alive.sum(axis=1)
    rank = np.cumsum(alive, axis=1)
    target = np.floor(u * count[:, None]).astype(np.int64) + 1  # 1-based rank among the living
    # First unit whose living rank reaches the target: one searchsorted over all rows, each
    # row's ranks offset past the previous row's (ranks are non-decreasing within a row).
    n, n_units = alive.shape
    offset = np.arange(n)[:, None] * (n_units + 1)
    flat = np.searchsorted((rank + offset).ravel(), (target + offset).ravel())
    pick = np.minimum(flat.reshape(target.shape) - np.arange(n)[:, None] * n_units, n_units - 1)
    smup = np.take_along_axis(fibres, pick, axis=1) * mv_per_fibre * subject[:, None]
    smup = smup * np.maximum(1 + smup_cov * z, 0.05)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, cmap_mv / smup.mean(axis=1), 0.0)


def effective_units(fibres: np.ndarray, squares: np.ndarray | None = None) -> np.ndarray:
    """``(sum f)^2 / sum f^2``: the number of equal units with the same surface interference
    pattern; the quantity MUNIX estimates (large units weigh more). Either one muscle's
    (patients, units) fibres, or per-muscle sums of the fibres and of their squares."""
    if squares is None:
        f = fibres.astype(np.float64)
        fibres, squares = f.sum(axis=1), (f * f).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(squares > 0, fibres**2 / squares, 0.0)


def munix_subject_sigma(cov: float, population_cov: float) -> float:
    """Log-normal sigma of a person's own MUNIX level, so that person and test-retest noise
    (CoV ``cov``) together give ``population_cov`` (``exam.munix_population_cov``)."""
    return float(np.sqrt(max(population_cov**2 - cov**2, 0.0)))


def munix(
    fibres: np.ndarray,
    squares: np.ndarray,
    scale: float | np.ndarray,
    subject: np.ndarray,
    z: np.ndarray,
    cov: float,
) -> np.ndarray:
    """MUNIX: effective unit number (from the sums of living fibres and of their squares)
    times the method's scale and the person's own level (``subject``, mean 1), with
    log-normal test-retest noise of CoV ``cov``."""
    return scale * subject * effective_units(fibres, squares) * np.exp(cov * z - cov**2 / 2)


def fasciculations(
    rate_per_min: np.ndarray, u: np.ndarray, z: np.ndarray, minutes: float
) -> np.ndarray:
    """Fasciculations per minute seen over ``minutes`` of observation at rest.

    ``rate_per_min`` is the expected rate, the sum of the living units' discharge rates
    (:func:`progression.exam.units.muscle_sums`); the count is Poisson, by inversion of
    ``u`` for small means (exact) and by the normal approximation (``z``) for large ones.
    """
    lam = np.asarray(rate_per_min * minutes, dtype=np.float64)
    u = np.broadcast_to(np.asarray(u, dtype=np.float64), lam.shape)
    # The inversion, element by element in a compiled loop (as whole arrays it made 40 passes
    # of temporaries); exp(-lam) by numpy as before, so every count is the same.
    k = _poisson_inversion(
        np.ascontiguousarray(lam).reshape(-1), np.exp(-lam).reshape(-1),
        np.ascontiguousarray(u).reshape(-1),
    ).reshape(lam.shape)
    big = np.maximum(np.rint(lam + np.sqrt(lam) * z), 0)
    return np.where(lam < 10, k, big) / minutes


@njit(cache=True, nogil=True)
def _poisson_inversion(lam, cdf0, u):
    """Poisson counts by inversion of ``u`` where ``lam < 10`` (0 elsewhere): the largest
    ``i < 40`` with ``u`` above the CDF at ``i - 1``, the CDF summed term by term as
    ``cdf + p``, ``p = p * lam / i``. The CDF only grows, so the search ends at the first
    ``i`` whose ``u`` it reaches."""
    k = np.zeros(lam.shape[0])
    for e in range(lam.shape[0]):
        if not lam[e] < 10:
            continue
        cdf = cdf0[e]
        p = cdf
        for i in range(1, 40):
            if not u[e] > cdf:
                break
            k[e] = i
            p = p * lam[e] / i
            cdf = cdf + p
    return k


def fibrillation_grade(orphan_fraction: np.ndarray, z: np.ndarray, sd: float) -> np.ndarray:
    """Fibrillation potentials 0-4 from fibres denervated and not yet reinnervated, the orphan
    fraction read with log-normal noise of log-SD ``sd``."""
    observed = orphan_fraction * np.exp(sd * z)
    return np.searchsorted(FIBRILLATION_THRESHOLDS, observed, side="right").astype(np.int8)


def mup_amplitude(
    fibres: np.ndarray,
    count: np.ndarray,
    healthy_mean: float | np.ndarray,
    healthy_uv: float | np.ndarray,
    z: np.ndarray,
    sd: float,
) -> np.ndarray:
    """Needle MUP amplitude (microvolts): the mean size of living units (their fibres over
    their count) over healthy, times the healthy value, with log-normal noise of log-SD ``sd``;
    nan if no unit is left."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, fibres / count, np.nan)
    return healthy_uv * mean / healthy_mean * np.exp(sd * z)
