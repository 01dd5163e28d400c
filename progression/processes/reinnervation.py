"""Collateral reinnervation and denervation atrophy (MODEL.md section 3).

Orphaned fibres wait in per-muscle age buckets (newest first). Each step a fraction
``1 - exp(-dt / tau_r)`` of every bucket is offered to the muscle's surviving units, shared in
proportion to ``spare capacity * (1 - sickness) ** q`` and never beyond what they can take; the
oldest bucket, unadopted for the atrophy window, is lost for good.
Invariant: healthy fibres = fibres of living units + orphans + atrophied.
"""

from __future__ import annotations

import numpy as np


def adopt(
    fibres: np.ndarray,
    alive: np.ndarray,
    sick: np.ndarray,
    capacity: np.ndarray,
    orphans: np.ndarray,
    offered: np.ndarray,
    q: float,
    starts: np.ndarray,
    muscle_of: np.ndarray,
) -> np.ndarray:
    """Surviving units adopt orphans in place; returns the fibres adopted per muscle.

    Args:
        fibres: (patients, units) fibres each unit commands (updated).
        alive: (patients, units) living units.
        sick: (patients, units) sickness in [0, 1).
        capacity: (patients, units) most fibres each unit may command (c_max * healthy size).
        orphans: (patients, muscles, buckets) orphaned fibres by age (updated).
        offered: (patients,) fraction of the pool offered this step, ``1 - exp(-dt / tau_r)``
            (0 for dead patients).
        q: sick units sprout ``(1 - s) ** q`` as much.
        starts: first unit of each muscle; muscle_of: muscle of each unit.
    """
    pool = orphans.sum(axis=2)
    spare = np.where(alive, np.maximum(capacity - fibres, 0.0), 0.0)
    if q:
        spare *= (1.0 - sick) ** q
    room = np.add.reduceat(spare, starts, axis=1)
    taken = np.minimum(pool * offered[:, None], room)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(room > 0, taken / room, 0.0)
        left = np.where(pool > 0, 1.0 - taken / pool, 1.0)
    fibres += spare * share[:, muscle_of]
    orphans *= left[:, :, None]
    return taken


def age_and_atrophy(
    orphans: np.ndarray, atrophied: np.ndarray, where: np.ndarray | bool = True
) -> np.ndarray:
    """Move the oldest bucket to ``atrophied`` and age the rest by one step, in place.

    Args:
        where: (patients, 1, 1) patients to advance (the dead are frozen).

    Returns the fibres lost per muscle (patients, muscles).
    """
    lost = np.where(where[..., 0] if np.ndim(where) else where, orphans[:, :, -1], 0.0)
    atrophied += lost
    aged = np.concatenate([np.zeros_like(orphans[:, :, :1]), orphans[:, :, :-1]], axis=2)
    np.copyto(orphans, aged, where=where)
    return lost
