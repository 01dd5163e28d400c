"""Transcranial magnetic stimulation from the tract state: threshold, MEP presence and CMCT.

Pure functions of arrays. A compartment's tract is a sample of axons with conduction velocities
``v`` (m/s, ascending: :func:`progression.processes.umn.velocities`) and an alive mask; the
fastest die first (MODEL.md section 4). What a neurologist records from it:

1. **The descending volley.** A magnetic stimulus excites corticospinal neurons, whose volleys
   summate at the spinal motoneurons. Each axon carries a weight ``w = (v / mean v) ** beta``
   (``exam.tms_volley_exponent``): the fast axons of the large Betz cells carry the
   corticomotoneuronal drive the MEP is made of. The surviving *drive* ``D`` is the weight of
   the living axons over the healthy tract's (1 when healthy).
2. **Recruitment and threshold.** At an intensity ``x`` times the person's healthy resting
   motor threshold ``RMT0`` (% of maximal stimulator output, MSO) the stimulus recruits a
   fraction ``r(x) = min(1, r1 * x ** gamma)`` of each surviving axon's drive; ``r1``
   (``exam.mep_threshold_drive``) is the share of the healthy volley that just brings the
   motoneurons to firing (``r(1) = r1``: the healthy threshold), and recruitment saturates at
   ``x_sat`` times RMT (``exam.mep_saturation_rmt``), so ``gamma = ln(1 / r1) / ln(x_sat)``.
   An MEP needs ``D * r(x) >= r1``: the threshold rises as the tract thins,
   ``RMT = RMT0 * D ** (-1 / gamma)``, and no stimulus evokes an MEP once ``D < r1`` (every
   surviving axon recruited is not enough). The clinic finds no MEP when the threshold it
   measures (with the test-retest noise of ``exam.rmt_sd``) exceeds maximal output.
3. **Onset latency and CMCT.** The motoneurons fire when enough drive has *arrived*: the
   volleys arrive fastest first, each axon after ``path / v``, and the MEP starts when the
   recruited drive that has arrived reaches ``r1``. Healthy, at the clinic's intensity
   (``exam.tms_intensity_rmt`` times RMT), the fast axons suffice; as they die, or when the
   stimulus is capped at maximal output near threshold, slower axons must add their drive:
   the volley desynchronises and the latency grows. CMCT = path / onset velocity + the
   synaptic delay, with the path set so that the healthy tract gives the muscle's healthy
   CMCT; a person's own offset (between-person spread) and a visit's noise are added.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Synaptic and cortical delay inside the CMCT (ms).
SYNAPTIC_DELAY_MS = 1.5
#: Maximal stimulator output (% MSO).
MSO = 100.0
#: Healthy CMCT SD by healthy mean: hand 1.3 ms, foot 2.5 ms (Jitsakulchaidej 2022 BMC Neurol).
CMCT_SD_MS = {7.5: 1.3, 14.0: 2.5}
#: Upper limit of normal CMCT: mean + this many population SDs (the laboratory convention).
CMCT_LIMIT_SD = 2.5


def volley_weights(v: np.ndarray, exponent: float) -> np.ndarray:
    """(axons,) each axon's share of the corticomotoneuronal drive, ``(v / mean v) ** exponent``
    (velocities in m/s): with a positive exponent the fast axons weigh most."""
    v = np.asarray(v, dtype=float)
    return (v / v.mean()) ** exponent


def drive(alive: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Surviving drive D in [0, 1]: the weight of the living axons (``alive``, (..., axons))
    over the healthy tract's."""
    return (alive * w).sum(axis=-1) / w.sum()


def recruitment_exponent(threshold_drive: float, saturation: float) -> float:
    """``gamma`` of ``r(x) = min(1, r1 * x ** gamma)``: recruitment rises from ``r1`` at the
    healthy threshold (x = 1) to all of the drive at ``x = saturation`` (times RMT)."""
    return float(np.log(1.0 / threshold_drive) / np.log(saturation))


def recruited(x: np.ndarray, threshold_drive: float, saturation: float) -> np.ndarray:
    """Fraction of each surviving axon's drive recruited at ``x`` times the healthy RMT."""
    gamma = recruitment_exponent(threshold_drive, saturation)
    x = np.maximum(np.asarray(x, dtype=float), 0.0)
    return np.minimum(1.0, threshold_drive * x**gamma)


def motor_threshold(
    rmt0: np.ndarray, d: np.ndarray, threshold_drive: float, saturation: float
) -> np.ndarray:
    """Resting motor threshold (% MSO) of a tract with surviving drive ``d``: ``RMT0 *
    d ** (-1 / gamma)``, which reaches ``saturation * RMT0`` at ``d = r1``; inf below it (no
    intensity evokes an MEP)."""
    gamma = recruitment_exponent(threshold_drive, saturation)
    d = np.asarray(d, dtype=float)
    reached = d >= threshold_drive
    return np.where(reached, rmt0 * np.where(reached, d, 1.0) ** (-1.0 / gamma), np.inf)


def subject_rmt(z: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """A person's healthy RMT (% MSO): ``mean + sd * z``, kept within 3 SD and below MSO."""
    return np.clip(mean + sd * np.clip(z, -3.0, 3.0), 1.0, MSO)


def measured_threshold(rmt: np.ndarray, z: np.ndarray, sd: float) -> np.ndarray:
    """The RMT the clinic finds at a visit: the true threshold plus test-retest noise (SD
    ``sd``, % MSO); inf stays inf."""
    return rmt + sd * z


def mep_present(measured_rmt: np.ndarray) -> np.ndarray:
    """An MEP at maximal stimulator output: the measured threshold is within reach."""
    return measured_rmt <= MSO


def latency_intensity(measured_rmt: np.ndarray, times_rmt: float) -> np.ndarray:
    """Stimulus for the latency (% MSO): ``times_rmt`` times the measured threshold, at most
    maximal output (the clinic's protocol, e.g. 120% RMT)."""
    return np.minimum(times_rmt * measured_rmt, MSO)


def onset_velocity(alive: np.ndarray, v: np.ndarray, w: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Velocity (m/s) of the axon whose arrival completes the drive the motoneurons need.

    Arrivals come fastest first; ``need`` (...,) is the drive (fraction of the healthy tract's,
    after recruitment: :func:`required_drive`) that must have arrived. nan where the survivors
    never supply it (no MEP). In numpy::

        arrived = np.cumsum((alive * w)[..., ::-1], axis=-1) / w.sum()
        idx = (arrived < need[..., None] - 1e-12).sum(axis=-1)
        vv = v[::-1][np.minimum(idx, len(v) - 1)]
        np.where(idx < len(v), vv, np.nan)

    computed by one compiled pass per tract (the running sum in the same order, so the same
    numbers; ``tests/test_tms.py`` checks it against that formula).
    """
    alive = np.asarray(alive, dtype=np.bool_)
    need = np.broadcast_to(np.asarray(need, dtype=float), alive.shape[:-1])
    k = alive.shape[-1]
    w = np.asarray(w, dtype=float)
    out = _onset_velocity(
        np.ascontiguousarray(alive).reshape(-1, k), np.asarray(v, dtype=float),
        np.ascontiguousarray(np.broadcast_to(w, (k,))), float(w.sum()),
        np.ascontiguousarray(need).reshape(-1),
    )
    return out.reshape(alive.shape[:-1])


@njit(cache=True, nogil=True)
def _onset_velocity(alive, v, w, total, need):
    n, k = alive.shape
    out = np.empty(n)
    for i in range(n):
        bar = need[i] - 1e-12
        cum = 0.0
        idx = 0
        # Fastest first. The weights are >= 0, so the arrived fraction never falls: the count
        # of arrivals short of the need ends at the first that is not (as for a nan need).
        for a in range(k - 1, -1, -1):
            cum += w[a] if alive[i, a] else 0.0
            if not cum / total < bar:
                break
            idx += 1
        out[i] = v[k - 1 - idx] if idx < k else np.nan
    return out


def required_drive(x: np.ndarray, threshold_drive: float, saturation: float) -> np.ndarray:
    """Drive (fraction of the healthy tract's, as arrivals count it) that must arrive for an
    MEP at ``x`` times the healthy RMT: ``r1 / r(x)``."""
    return threshold_drive / np.maximum(recruited(x, threshold_drive, saturation), 1e-300)


def healthy_onset(
    v: np.ndarray,
    w: np.ndarray,
    times_rmt: float,
    rmt0: float,
    rmt_sd: float,
    threshold_drive: float,
    saturation: float,
    nodes: int = 21,
) -> tuple[float, float]:
    """A healthy tract's onset velocity (m/s) and the CoV of its conduction time that the
    clinic's stimulus brings: the latency is recorded at ``times_rmt`` times the *measured*
    threshold (``rmt0`` with test-retest SD ``rmt_sd``, % MSO), and a weaker stimulus needs
    slower axons. Returns ``1 / E[1 / v_onset]`` (so that the healthy CMCT is right on
    average) and ``SD[1 / v_onset] / E[1 / v_onset]``, over the normal noise by
    Gauss-Hermite quadrature with ``nodes`` nodes."""
    z, wq = np.polynomial.hermite_e.hermegauss(nodes)
    wq = wq / wq.sum()
    need = latency_drive(rmt0 + rmt_sd * z, rmt0, 1.0, times_rmt, threshold_drive, saturation)
    tract = np.ones((nodes, len(v)), dtype=bool)
    inv = 1.0 / onset_velocity(tract, v, w, need)
    mean = float((wq * inv).sum())
    sd = float(np.sqrt((wq * (inv - mean) ** 2).sum()))
    return 1.0 / mean, sd / mean


def latency_drive(
    measured_rmt: np.ndarray,
    rmt0: np.ndarray,
    d: np.ndarray,
    times_rmt: float,
    threshold_drive: float,
    saturation: float,
) -> np.ndarray:
    """Drive that must arrive for the MEP whose latency the clinic records (fraction of the
    healthy tract's): at ``times_rmt`` times the measured threshold (at most maximal output);
    where that stimulus falls below the true threshold (the measured one erred low), at
    maximal output, and where even that needs more than the surviving drive ``d`` (an MEP
    found only through the noise of the measured threshold), all of it: very delayed."""
    need = required_drive(
        latency_intensity(measured_rmt, times_rmt) / rmt0, threshold_drive, saturation
    )
    at_max = required_drive(MSO / rmt0, threshold_drive, saturation)
    return np.where(need <= d, need, np.minimum(at_max, d))


def cmct(
    v_onset: np.ndarray,
    v_onset_healthy: float,
    healthy_ms: np.ndarray,
    own_ms: np.ndarray,
    noise_ms: np.ndarray,
) -> np.ndarray:
    """CMCT (ms) = path / onset velocity + synaptic delay + the person's own offset + the
    visit's noise; the path is set so that the healthy tract (onset velocity
    ``v_onset_healthy``) gives ``healthy_ms``. nan where there is no MEP."""
    path_ms_m_s = (np.asarray(healthy_ms) - SYNAPTIC_DELAY_MS) * v_onset_healthy
    return path_ms_m_s / v_onset + SYNAPTIC_DELAY_MS + own_ms + noise_ms


def cmct_sd(healthy_ms: float) -> float:
    """Published between-person SD of CMCT (ms) for a target with healthy mean ``healthy_ms``
    (:data:`CMCT_SD_MS`; elsewhere 17% of the mean, the hand's ratio)."""
    return CMCT_SD_MS.get(healthy_ms, 0.17 * healthy_ms)


def cmct_upper_limit(healthy_ms: float) -> float:
    """Upper limit of normal CMCT (ms) for a target with healthy mean ``healthy_ms``."""
    return healthy_ms + CMCT_LIMIT_SD * cmct_sd(healthy_ms)


def subject_cmct_sd(population_sd, visit_sd, intensity_sd) -> np.ndarray:
    """SD (ms) of a person's own CMCT offset, so that it, the visit noise (``visit_sd``) and
    the spread the stimulus intensity brings (``intensity_sd``, :func:`healthy_onset`)
    together give the published between-person SD ``population_sd`` (all in ms)."""
    rest = np.asarray(population_sd) ** 2 - np.asarray(visit_sd) ** 2
    rest = rest - np.asarray(intensity_sd) ** 2
    return np.sqrt(np.maximum(rest, 0.0))


__all__ = [
    "CMCT_LIMIT_SD",
    "CMCT_SD_MS",
    "MSO",
    "SYNAPTIC_DELAY_MS",
    "cmct",
    "cmct_sd",
    "cmct_upper_limit",
    "drive",
    "healthy_onset",
    "latency_drive",
    "latency_intensity",
    "measured_threshold",
    "mep_present",
    "motor_threshold",
    "onset_velocity",
    "recruited",
    "recruitment_exponent",
    "required_drive",
    "subject_cmct_sd",
    "subject_rmt",
    "volley_weights",
]
