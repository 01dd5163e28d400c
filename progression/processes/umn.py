"""Upper motor neuron loss: corticospinal and corticobulbar tracts, one per compartment.

Each tract is a sample of K axons with conduction velocities (m/s) and Exp(1) thresholds; they
die by the same threshold rule as LMNs under the UMN hazard, fastest (largest Betz-cell) axons
first: ``w_a = (v_a / mean v) ** exponent`` (MODEL.md section 4).
"""

from __future__ import annotations

import numpy as np

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
    """(patients, compartments) fraction of each tract's axons alive, U in [0, 1]."""
    return alive.mean(axis=-1)


def release(previous: np.ndarray, loss: np.ndarray, dt: float) -> np.ndarray:
    """Spinal release after ``dt`` months: the tract loss (``1 - U``) as the spinal circuits
    have adapted to it, relaxing towards the loss with time constant
    :data:`SPASTICITY_MONTHS` (dimensionless, 0 to 1; never above the loss)."""
    return previous + (loss - previous) * -np.expm1(-dt / SPASTICITY_MONTHS)
