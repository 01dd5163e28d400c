"""Upper motor neuron loss: corticospinal and corticobulbar tracts, one per compartment.

Each tract is a sample of K axons with conduction velocities (m/s) and Exp(1) thresholds; they
die by the same threshold rule as LMNs under the UMN hazard, fastest (largest Betz-cell) axons
first: ``w_a = (v_a / mean v) ** exponent`` (MODEL.md section 4).
"""

from __future__ import annotations

import numpy as np

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
