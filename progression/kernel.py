"""The fused per-step pass over motor units (numba): atrophy, LMN death and reinnervation.

It computes exactly what :mod:`progression.processes` compute phase by phase with whole-array
numpy operations (``reinnervation.age_and_atrophy``, ``lmn.deaths``/``release_fibres``,
``reinnervation.adopt``), but in one pass per muscle over each patient's units, with no
temporaries, so the units' arrays cross the memory bus about twice per step instead of twenty
times. ``tests/test_kernel.py`` checks the two agree. Patients are independent, so the result
never depends on how patients are grouped in chunks.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def step_units(
    hazard: np.ndarray,
    compartment_of_muscle: np.ndarray,
    starts: np.ndarray,
    threshold: np.ndarray,
    alive: np.ndarray,
    fibres: np.ndarray,
    base: np.ndarray,
    capacity_scale: np.ndarray,
    orphans: np.ndarray,
    atrophied: np.ndarray,
    adoption: np.ndarray,
    sick_exponent: float,
    living: np.ndarray,
    fibres_sum: np.ndarray,
    alive_count: np.ndarray,
) -> None:
    """Advance every living patient's motor units by one step, in place.

    Args:
        hazard: (patients, compartments) cumulative LMN hazard after this step's increment.
        compartment_of_muscle: (muscles,) compartment index.
        starts: (muscles + 1,) first unit of each muscle, then the unit count.
        threshold: (patients, units) scaled death thresholds E / w (float32).
        alive, fibres: (patients, units) unit state (updated).
        base: (units,) healthy unit sizes (fibres).
        capacity_scale: (patients,) c_max.
        orphans: (patients, muscles, buckets) orphaned fibres by age (updated).
        atrophied: (patients, muscles) fibres lost (updated).
        adoption: (patients,) fraction of the orphan pool offered this step, ``1 - exp(-dt/tau)``.
        sick_exponent: q.
        living: (patients,) patients still alive (the dead are frozen).
        fibres_sum, alive_count: (patients, muscles) fibres of living units and living units,
            as of the last step on entry (muscles skipped keep them), updated on exit.
    """
    n_patients = threshold.shape[0]
    n_muscles = starts.shape[0] - 1
    n_buckets = orphans.shape[2]
    spare = np.empty(threshold.shape[1], dtype=np.float32)
    for p in range(n_patients):
        if not living[p]:
            continue
        cap = capacity_scale[p]
        for m in range(n_muscles):
            # Atrophy: the oldest bucket is lost, the others age by one step.
            atrophied[p, m] += orphans[p, m, n_buckets - 1]
            for b in range(n_buckets - 1, 0, -1):
                orphans[p, m, b] = orphans[p, m, b - 1]
            orphans[p, m, 0] = 0.0
            # LMN death, and each survivor's room to sprout (spare capacity x health^q).
            h = np.float32(hazard[p, compartment_of_muscle[m]])
            if h == 0.0 or alive_count[p, m] == 0:
                # Untouched by the disease so far (so no orphans either), or no unit left:
                # nothing dies, nobody sprouts, and the sums from the last step still hold.
                continue
            released = np.float32(0.0)
            room = np.float32(0.0)
            for u in range(starts[m], starts[m + 1]):
                spare[u] = 0.0
                if not alive[p, u]:
                    continue
                t = threshold[p, u]
                if h > t:
                    alive[p, u] = False
                    released += fibres[p, u]
                    fibres[p, u] = 0.0
                    continue
                room_u = cap * base[u] - fibres[p, u]
                if room_u < 0.0:
                    room_u = np.float32(0.0)
                if sick_exponent != 0.0:
                    health = np.float32(1.0) - min(h / t, np.float32(1.0))  # h / inf = 0
                    if sick_exponent == 2.0:
                        room_u *= health * health
                    elif sick_exponent == 1.0:
                        room_u *= health
                    else:
                        room_u *= np.float32(health**sick_exponent)
                spare[u] = room_u
                room += room_u
            orphans[p, m, 0] += released
            # Reinnervation: a share of every bucket is offered, adopted within the room.
            pool = 0.0
            for b in range(n_buckets):
                pool += orphans[p, m, b]
            taken = min(pool * adoption[p], room)
            share = taken / room if room > 0 else 0.0
            left = 1.0 - taken / pool if pool > 0 else 1.0
            for b in range(n_buckets):
                orphans[p, m, b] *= left
            total = 0.0
            count = 0
            for u in range(starts[m], starts[m + 1]):
                if alive[p, u]:
                    fibres[p, u] += spare[u] * share
                    total += fibres[p, u]
                    count += 1
            fibres_sum[p, m] = total
            alive_count[p, m] = count
