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


@njit(inline="always")
def _squared(health, q):
    return health * health


@njit(inline="always")
def _linear(health, q):
    return health


@njit(inline="always")
def _power(health, q):
    return np.float32(health**q)  # 0 ** 0 = 1: q = 0 leaves the room unweighted


#: The kernel's sums are kept in this many lanes (:func:`_lane_sum`): the compiler turns a lane
#: loop into whole vectors of any width without reordering a sum, so the sums, and every table,
#: are the same with any vector width (a sum the compiler reassociates is not). Of 8, 16, 32, 64
#: and 128 lanes, 64 was fastest, as fast as the reassociated sums before.
LANES = 64


@njit(inline="always")
def _lane_sum(x, lanes):
    """``sum(x)`` added in :data:`LANES` lanes (``lanes``: scratch of that length, any float
    dtype, which sets the precision): lane ``l`` adds ``x[l], x[l + LANES], ...`` in order,
    then the lanes are added in order. A loop over the lanes is one whole vector of any width,
    so the compiler vectorises the sum without reordering it."""
    n = x.shape[0]
    whole = n - n % LANES
    lanes[:] = 0.0
    for u0 in range(0, whole, LANES):
        for lane in range(LANES):
            lanes[lane] += x[u0 + lane]
    for u in range(whole, n):
        lanes[u - whole] += x[u]
    total = lanes[0]
    for lane in range(1, LANES):
        total += lanes[lane]
    return total


@njit(inline="always", error_model="numpy")
def _deaths_and_room(h, cap, threshold, alive, fibres, base, spare, released, q, weight, lanes):
    """One muscle's LMN deaths at cumulative hazard ``h``, and each survivor's room to sprout:
    spare capacity ``cap * base - fibres`` times ``weight(health, q)``, health ``1 - h / E``.
    Kills in place, writes each unit's room to ``spare`` and the fibres it releases to
    ``released``, and returns their sums (:func:`_lane_sum`). Branch-free (the dead keep no
    fibres and get no room), so the compiler vectorises it."""
    for u in range(threshold.shape[0]):
        t = threshold[u]
        f = fibres[u]
        was = alive[u]
        lives = was & (h <= t)
        released[u] = f if was & (h > t) else np.float32(0.0)
        health = np.float32(1.0) - min(h / t, np.float32(1.0))  # h / inf = 0
        room_u = max(cap * base[u] - f, np.float32(0.0)) * weight(health, q)
        alive[u] = lives
        fibres[u] = f if lives else np.float32(0.0)
        spare[u] = room_u if lives else np.float32(0.0)
    return _lane_sum(released, lanes), _lane_sum(spare, lanes)


@njit(cache=True, nogil=True, error_model="numpy")
def step_units(
    hazard: np.ndarray,
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
        hazard: (patients, muscles) cumulative LMN hazard after this step's increment.
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
    released_u = np.empty(threshold.shape[1], dtype=np.float32)
    lanes32 = np.empty(LANES, dtype=np.float32)  # the lanes of the muscle's sums
    lanes64 = np.empty(LANES)
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
            h = np.float32(hazard[p, m])
            if h == 0.0 or alive_count[p, m] == 0:
                # Untouched by the disease so far (so no orphans either), or no unit left:
                # nothing dies, nobody sprouts, and the sums from the last step still hold.
                continue
            a0, a1 = starts[m], starts[m + 1]
            t_m, a_m, f_m = threshold[p, a0:a1], alive[p, a0:a1], fibres[p, a0:a1]
            b_m, s_m, r_m, q = base[a0:a1], spare[a0:a1], released_u[a0:a1], sick_exponent
            if q == 2.0:
                released, room = _deaths_and_room(
                    h, cap, t_m, a_m, f_m, b_m, s_m, r_m, q, _squared, lanes32
                )
            elif q == 1.0:
                released, room = _deaths_and_room(
                    h, cap, t_m, a_m, f_m, b_m, s_m, r_m, q, _linear, lanes32
                )
            else:
                released, room = _deaths_and_room(
                    h, cap, t_m, a_m, f_m, b_m, s_m, r_m, q, _power, lanes32
                )
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
            count = 0
            for u in range(a1 - a0):
                f_m[u] += s_m[u] * share  # the dead: no fibres, no room
                count += a_m[u]
            fibres_sum[p, m] = _lane_sum(f_m, lanes64)
            alive_count[p, m] = count
