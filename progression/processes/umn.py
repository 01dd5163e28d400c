"""Upper motor neuron loss: corticospinal and corticobulbar tracts, one per compartment.

Each tract is a sample of K axons with conduction velocities (m/s) and Exp(1) thresholds; they
die by the same threshold rule as LMNs under the UMN hazard, fastest (largest Betz-cell) axons
first: ``w_a = (v_a / mean v) ** exponent`` (MODEL.md section 4).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Time constant (months) of spasticity developing below a tract loss: the spinal circuits
#: released from descending control grow hyperexcitable over months (motoneuron persistent
#: inward currents, lost presynaptic and reciprocal inhibition). After spinal cord injury brisk
#: reflexes return within weeks and spasticity establishes over 1 to 12 months (Ditto & Little
#: 2004 Spinal Cord 42:383, phase 4); after stroke spasticity is found in about a quarter at 6
#: weeks and is established by 3-6 months (Wissel 2010 J Neurol 257:1067; Sommerfeld 2004
#: Stroke 35:134). 4 months: 95% of a loss is felt within 12 (chosen from that span).
SPASTICITY_MONTHS = 4.0
#: Conduction velocities of the tract sample: quantiles of 20-75 m/s, fast axons 50-70 m/s.
VELOCITY_RANGE_M_S = (20.0, 75.0)


def velocities(axons: int) -> np.ndarray:
    """(axons,) conduction velocities (m/s), evenly spaced quantiles, slowest first."""
    lo, hi = VELOCITY_RANGE_M_S
    return lo + (hi - lo) * (np.arange(axons) + 0.5) / axons


def weight(v: np.ndarray, exponent: float) -> np.ndarray:
    """Relative hazard of each axon: the fastest are most vulnerable."""
    return (v / v.mean()) ** exponent


def integrity(alive: np.ndarray) -> np.ndarray:
    """(patients, compartments) fraction of each tract's axons alive, U in [0, 1]:
    ``alive.mean(axis=-1)``, as a compiled count over the last axis (the count of a bool mask is
    exact, so count / axons is the mean's value to the last bit; ``tests/test_umn.py``)."""
    alive = np.asarray(alive, dtype=np.bool_)
    shape = alive.shape[:-1]
    flat = np.ascontiguousarray(alive).reshape(-1, alive.shape[-1])
    return _integrity(flat).reshape(shape)


@njit(cache=True, nogil=True)
def _integrity(alive):
    n, k = alive.shape
    out = np.empty(n)
    for i in range(n):
        c = 0
        for a in range(k):
            c += alive[i, a]
        out[i] = c / k
    return out


def lose_axons(
    hazard: np.ndarray, threshold: np.ndarray, alive: np.ndarray, living: np.ndarray
) -> np.ndarray:
    """Tract axons of the living patients whose hazard passed their threshold die, in place:
    ``alive[living] &= ~(hazard[living, :, None] > threshold[living])``; returns the
    (patients, compartments) integrity after the loss (:func:`integrity`), computed in the same
    pass (the dead patients' tracts are counted, not changed).

    Args:
        hazard: (patients, compartments) cumulative UMN hazard of a weight-1 axon.
        threshold: (patients, compartments, axons) scaled thresholds (float32).
        alive: (patients, compartments, axons) bool, updated in place.
        living: (patients,) bool.
    """
    return _lose_axons(hazard, threshold, alive, living)


@njit(cache=True, nogil=True)
def _lose_axons(hazard, threshold, alive, living):
    n, m, k = alive.shape
    out = np.empty((n, m))
    for j in range(n):
        for c in range(m):
            count = 0
            if living[j]:
                h = hazard[j, c]
                for a in range(k):
                    keep = alive[j, c, a] and not h > threshold[j, c, a]
                    alive[j, c, a] = keep
                    count += keep
            else:
                for a in range(k):
                    count += alive[j, c, a]
            out[j, c] = count / k
    return out


def release(previous: np.ndarray, loss: np.ndarray, dt: float) -> np.ndarray:
    """Spinal release after ``dt`` months: the tract loss (``1 - U``) as the spinal circuits
    have adapted to it, relaxing towards the loss with time constant
    :data:`SPASTICITY_MONTHS` (dimensionless, 0 to 1; never above the loss)."""
    return previous + (loss - previous) * -np.expm1(-dt / SPASTICITY_MONTHS)
