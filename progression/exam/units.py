"""Per-muscle sums over the living units, for the examinations: one compiled pass.

A visit's findings need a handful of sums over each muscle's living units: how many there are,
their fibres (CMAP, needle MUP size), their squared fibres (MUNIX's effective unit number) and
their spontaneous discharge rates (fasciculations, MODEL.md 6). Whole-array numpy would make a
(patients, units) temporary for every intermediate (sickness, margin, rate, enlargement); this
pass walks each muscle's units once and keeps only the four sums. ``tests/test_exam_units.py``
checks it against the numpy formulas of :mod:`progression.processes`.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def muscle_sums(
    rows: np.ndarray,
    hazard: np.ndarray,
    starts: np.ndarray,
    threshold: np.ndarray,
    alive: np.ndarray,
    fibres: np.ndarray,
    base: np.ndarray,
    margin_mv: float,
    sickness_exponent: float,
    noise_mv: float,
    max_rate_per_min: float,
    enlargement_exponent: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sums over each muscle's living units of the patients at ``rows``.

    Args:
        rows: (examined,) rows of the chunk's patients.
        hazard: (patients, muscles) cumulative LMN hazard.
        starts: (muscles + 1,) first unit of each muscle, then the unit count.
        threshold: (patients, units) scaled death thresholds E / w (float32).
        alive, fibres: (patients, units) unit state.
        base: (units,) healthy unit sizes (fibres).
        margin_mv, sickness_exponent, noise_mv, max_rate_per_min, enlargement_exponent: the
            scenario's ``[excitability]``: a unit of sickness ``s = H / E`` and enlargement
            ``x = fibres / base`` discharges at
            ``max_rate * exp(-(margin_mv (1 - s)^p)^2 / (2 noise^2)) * x^gamma`` per minute.

    Returns:
        ``(count, fibres, fibres_squared, rate)``, each (examined, muscles): living units,
        their fibres, their squared fibres, and their summed discharge rate (per minute).
    """
    n = rows.shape[0]
    m = starts.shape[0] - 1
    count = np.zeros((n, m), dtype=np.int64)
    total = np.zeros((n, m))
    squares = np.zeros((n, m))
    rate = np.zeros((n, m))
    # The margin enters squared: (margin_mv (1 - s)^p)^2 = margin_mv^2 (1 - s)^(2p).
    a = margin_mv * margin_mv / (2.0 * noise_mv * noise_mv)
    two_p = 2.0 * sickness_exponent
    healthy_rate = max_rate_per_min * np.exp(-a)
    width = 0
    for i in range(m):
        width = max(width, starts[i + 1] - starts[i])
    living = np.empty(width, dtype=np.uint64)  # the muscle's living units (unsigned: no
    # negative-index wraparound in the loop that reads them)
    for j in range(n):
        r = np.uint64(rows[j])
        for i in range(m):
            h = np.float32(hazard[r, i])
            # First the living units' indices, without a branch (whether a unit lives is as
            # good as random once a muscle degenerates), then the sums over them alone, in
            # unit order as before: a chain of additions per living unit, not per unit.
            c = 0
            for u in range(np.uint64(starts[i]), np.uint64(starts[i + 1])):
                living[c] = u
                c += alive[r, u]
            f1 = 0.0
            f2 = 0.0
            q = 0.0
            for k in range(c):
                u = living[k]
                f = np.float64(fibres[r, u])
                f1 += f
                f2 += f * f
                if h == 0.0:  # s = 0: the healthy margin
                    q_u = healthy_rate
                else:
                    s = min(h / threshold[r, u], np.float32(1.0))  # h / inf = 0
                    left = 1.0 - np.float64(s)
                    closed = left if two_p == 1.0 else left**two_p
                    q_u = max_rate_per_min * np.exp(-a * closed)
                if enlargement_exponent != 0.0:
                    x = f / base[u]
                    q_u *= x * x if enlargement_exponent == 2.0 else x**enlargement_exponent
                q += q_u
            count[j, i] = c
            total[j, i] = f1
            squares[j, i] = f2
            rate[j, i] = q
    return count, total, squares, rate
