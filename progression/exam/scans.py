"""Stimulus-response recordings of a muscle: CMAP scans and incremental-stimulation MUNE.

Each motor unit has an axonal threshold to electrical stimulation of its nerve (mA), drawn once
per patient: log-normal across the pool around a per-patient, per-muscle median, independent of
the unit's size (no strict order by size). From one stimulus to the next the threshold fluctuates,
``T (1 + rs z)`` with z standard normal and a relative spread ``rs`` of 1-2% (the threshold
variability of the MScanFit model, Bostock 2016 Muscle Nerve); z is truncated at +-:data:`BAND`
SD, beyond which a unit fires (or stays silent) for sure. A unit's single motor unit potential
(SMUP) is its fibre count times the muscle's millivolts per fibre, so enlarged, reinnervated
units give large SMUPs and the SMUPs of a muscle sum to its CMAP. A response is the sum of the
SMUPs of the units that fire plus Gaussian recording noise (about 10 microvolts).

Two recordings, both pure functions of arrays:

- :func:`scan`: a CMAP scan, N stimuli (e.g. 500) falling linearly from supramaximal to
  subthreshold (Maathuis 2012 J Brachial Plex Peripher Nerve Inj 7:4; Bostock 2016). Recorded
  only where a scenario asks for it (``[exam.scans]``).
- :func:`incremental_mune`: motor unit number estimation by incremental stimulation (McComas,
  Fawcett, Campbell & Sica 1971 JNNP 34:121): the stimulus rises in small steps from below the
  lowest threshold; each response that stands out from every level seen so far by more than the
  detection limit is a new increment; after n increments (McComas: about 10) the mean SMUP is
  the top level over n, and MUNE = CMAP / mean SMUP. Its biases are not assumed, they emerge:
  SMUPs smaller than the detection limit merge into larger increments (underestimation, most in
  healthy muscles with many small units), and units whose threshold ranges overlap fire in
  alternating combinations that count as extra increments (the alternation problem, Brown &
  Milner-Brown 1976 JNNP 39:249: overestimation, most after reinnervation, when the few
  remaining units are large). This is the ``muscles.mune`` of every visit.

Cost: both walk a muscle's units in threshold order (sorted once per patient) with two pointers.
Units whose threshold band lies wholly below the stimulus fire for sure (a prefix sum), those
wholly above stay silent; only units within +-BAND rs of the stimulus draw a random number. So an
incremental MUNE touches about a thousand unit-stimuli rather than units x stimuli (20 times
more). The incremental MUNE computes those draws 16 stimuli at a time in whole vectors, comparing
the uniforms with a polynomial of the normal CDF and falling back on the table only where the two
could disagree, so its numbers are those of one stimulus at a time (about 5 microseconds per
muscle and visit). SMUPs are summed as whole nanovolts: integer sums are exact in any order, so
the compiler may vectorise them and the result is the same on every machine.

Random numbers are counter-based: the draw for (muscle, unit rank, stimulus) of a patient is the
SplitMix64 draw of that counter in the patient's stream (:func:`progression.random.starts`), so a
patient's recordings depend only on (seed, stream, patient id), never on the chunk.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from progression import random as rnd

#: Threshold fluctuation is truncated at this many SDs (a unit fires for sure above the band).
BAND = 3.0
#: Incremental stimulation starts this many fluctuation SDs below the lowest threshold.
START = 3.0
#: Median axonal threshold of a pool (mA, 0.1 ms pulses; median and ulnar nerves at the wrist
#: are stimulated at about 5-10 mA: order of magnitude, it only sets the stimulus axis).
MEDIAN_THRESHOLD_MA = 7.0
#: Between-person log-SD of a pool's median threshold (skin, depth of the nerve).
PERSON_THRESHOLD_SD = 0.2
#: A scan starts this much above the highest threshold band (supramaximal) and ends this much
#: below the lowest (subthreshold).
SCAN_MARGIN = 0.05
#: Counter layout of lazy draws: ((muscle * _SLOTS + slot) * _STIMS + stimulus) + 1.
_SLOTS = 8192  # unit ranks 0..5000, noise in the last slot
_STIMS = 4096  # stimuli per recording at most
_NOISE = _SLOTS - 1
MAX_STIMULI = _STIMS


# ------------------------------------------------------------------------------- random draws

_uniform = rnd.draw  # the counter-th uniform of a patient's stream, in compiled loops


_A = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690,
      -30.66479806614716, 2.506628277459239)
_B = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
      -13.28068155288572)
_C = (-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
      4.374664141464968, 2.938163982698783)
_D = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416)


@numba.njit(inline="always")
def _ndtri(p):
    """Standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9)."""
    if p < 0.02425:
        q = math.sqrt(-2.0 * math.log(p))
        return (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
            (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
        )
    if p > 0.97575:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        return -(((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
            (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
        )
    q = p - 0.5
    r = q * q
    return (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q / (
        ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0
    )


@numba.njit(inline="always")
def _nanovolts(mv):
    """A SMUP in whole nanovolts: integer sums are exact in any order, so the compiler may
    vectorise them and results stay the same on every machine."""
    return np.int64(round(mv * 1e6))


@numba.njit(inline="always")
def _counter(muscle, slot, stimulus):
    return (muscle * _SLOTS + slot) * _STIMS + stimulus + 1


#: Standard normal CDF tabulated over the band (linear interpolation: error below 1e-6), with
#: its ends set to 0 and 1: below the band a unit never fires, above it always.
_PHI_PER_SD = 512
_PHI = np.array(
    [
        0.5 * math.erfc(-x / math.sqrt(2.0))
        for x in np.linspace(-BAND, BAND, int(2 * BAND * _PHI_PER_SD) + 1)
    ]
)
_PHI[0], _PHI[-1] = 0.0, 1.0
_PHI_LAST = float(_PHI.shape[0] - 1)


@numba.njit(inline="always")
def _phi(x):
    """Standard normal CDF, tabulated over the band (0 below it, 1 above); branch-free, so the
    loops over units in the band vectorise."""
    y = min(max((x + BAND) * _PHI_PER_SD, 0.0), _PHI_LAST)
    j = min(int(y), _PHI.shape[0] - 2)
    f = y - j
    return _PHI[j] + f * (_PHI[j + 1] - _PHI[j])


def _phi_polynomial(degree: int = 8) -> np.ndarray:
    """Coefficients ``c`` of ``Phi(x) ~ 1/2 + x sum_i c[i] (x^2 / BAND^2)^i`` over the band:
    least squares at Chebyshev nodes (the error is below 2e-7 inside the band, within
    :data:`_PHI_TOLERANCE` of the table; ``tests/test_scans.py`` checks it segment by
    segment)."""
    x = BAND * np.cos(np.pi * (np.arange(4000) + 0.5) / 4000)
    phi = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x])
    return np.polynomial.polynomial.polyfit(x * x / BAND**2, (phi - 0.5) / x, degree)


_PHI_POLY = _phi_polynomial()
#: The polynomial differs from the table :func:`_phi` by less than this inside the band, away
#: from the table's first and last segments (set to 0 and 1). A uniform farther than this from
#: the polynomial's value decides as the table would; nearer ones are decided by the table.
_PHI_TOLERANCE = 1e-6
#: Beyond this |x| (SDs) the table's end segments differ from Phi: decided by the table.
_PHI_EDGE = BAND - 2.0 / _PHI_PER_SD


@numba.njit(inline="always")
def _phi_approx(x):
    """The standard normal CDF within the band by a polynomial (no table look-up, so the loops
    that call it vectorise without gathers); within :data:`_PHI_TOLERANCE` of :func:`_phi`
    for ``|x| <= _PHI_EDGE``."""
    w = x * x * (1.0 / (BAND * BAND))
    g = _PHI_POLY[-1]
    for i in range(_PHI_POLY.shape[0] - 2, -1, -1):
        g = g * w + _PHI_POLY[i]
    return 0.5 + x * g


@numba.njit(inline="always")
def _guess(u, x):
    """``(u < Phi(x) by the polynomial, unsure)``: the guess equals the table's decision
    ``u < _phi(x)`` unless ``unsure`` (u within :data:`_PHI_TOLERANCE` of the polynomial, or
    ``|x|`` beyond :data:`_PHI_EDGE`)."""
    p = _phi_approx(x)
    return u < p, (abs(u - p) < _PHI_TOLERANCE) | (abs(x) > _PHI_EDGE)


@numba.njit(inline="always")
def _band_fired(key, muscle, k, s, lo, hi, b_t, b_inv, b_amp, b_rank):
    """Nanovolts fired at stimulus ``k`` of strength ``s`` by the units ``lo:hi`` of a buffer in
    threshold order whose fluctuation band contains ``s``: unit ``b`` (threshold ``b_t``,
    ``b_inv = 1 / (rs T)``) fires when ``T (1 + rs z) < s``, i.e. when the uniform of its
    counter falls below ``Phi((s - T) / (rs T))``."""
    fired = 0
    for b in range(lo, hi):
        p = _phi((s - b_t[b]) * b_inv[b])
        fired += b_amp[b] * (_uniform(key, _counter(muscle, b_rank[b], k)) < p)
    return fired


# ---------------------------------------------------------------------------- unit thresholds


def thresholds(
    seed: int, ids: np.ndarray, start: np.ndarray, pool_sd: float,
    muscles: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's axonal threshold, drawn once per patient, sorted within each muscle.

    Args:
        seed: scenario seed.
        ids: (patients,) patient ids.
        start: (muscles + 1,) first unit of each muscle in the flat unit axis, and the total.
        pool_sd: log-SD of thresholds across a muscle's pool.
        muscles: (muscles,) bool, the muscles whose thresholds are needed (default all); the
            others' blocks are left nan (order 0). A muscle's thresholds are the same whichever
            others are drawn: each unit's deviate is a pure function of its counter.

    Returns:
        ``(sorted_ma, order)``: (patients, units) float32 thresholds (mA) in ascending order
        within each muscle's block, and (patients, units) int16 unit index within the muscle
        of each sorted position. The normal deviates are
        ``scipy.special.ndtri(progression.random.uniform(seed, "scan-threshold", ids, units))``
        (and ``"scan-threshold-muscle"`` for the pool medians), drawn in a compiled loop.
    """
    n, units = len(ids), int(start[-1])
    m = len(start) - 1
    sorted_ma = np.full((n, units), np.nan, dtype=np.float32)
    order = np.zeros((n, units), dtype=np.int16)
    _thresholds(
        rnd.starts(seed, "scan-threshold", ids), rnd.starts(seed, "scan-threshold-muscle", ids),
        np.asarray(start, dtype=np.int64), float(pool_sd),
        np.ones(m, dtype=np.bool_) if muscles is None else np.asarray(muscles, dtype=np.bool_),
        sorted_ma, order,
    )
    return sorted_ma, order


@numba.njit(inline="always")
def _normal(key, c):
    """The ``c``-th (from 0) standard normal of a stream, by inversion of its ``c + 1``-th
    uniform: ``ndtri(u)``, as :mod:`progression.distributions` draws the latent parameters.
    One uniform and, outside the 5% tails, no logarithm: about half the cost of Box-Muller."""
    return _ndtri(_uniform(key, c + 1))


@numba.njit(inline="always")
def _stable_order(z, o, count):
    """The stable ascending order of ``z`` (standard normal deviates) into ``o``, as
    ``np.argsort(z, kind="stable")`` gives it, about three times faster for a muscle's few
    hundred units: a counting sort into ``len(count) - 1`` equal buckets over [-4, 4) (the
    ends take the rest), which keeps equal values in index order, then an insertion sort that
    moves values only within their bucket. ``count``: scratch, (buckets + 1,) int64, any
    number of buckets (:data:`_BUCKETS_PER_UNIT` per value)."""
    n = z.shape[0]
    buckets = count.shape[0] - 1
    per_sd = buckets / 8.0
    count[:] = 0
    for q in range(n):
        k = min(max(int((z[q] + 4.0) * per_sd), 0), buckets - 1)
        count[k + 1] += 1
    for k in range(buckets):
        count[k + 1] += count[k]
    for q in range(n):
        k = min(max(int((z[q] + 4.0) * per_sd), 0), buckets - 1)
        o[count[k]] = q
        count[k] += 1
    for q in range(1, n):
        v = o[q]
        p = q - 1
        while p >= 0 and z[o[p]] > z[v]:
            o[p + 1] = o[p]
            p -= 1
        o[p + 1] = v


#: Buckets of :func:`_stable_order` per unit sorted: with 4 about one unit in 4 buckets, so the
#: insertion sort within buckets rarely moves anything (with 1, about a third of the units sit
#: in a bucket with another); the counts (8 bytes a bucket) stay in the first-level cache.
_BUCKETS_PER_UNIT = 4


@numba.njit(cache=True, nogil=True)
def _thresholds(unit_keys, pool_keys, start, pool_sd, needed, sorted_ma, order):
    m = start.shape[0] - 1
    units = start[m]
    z = np.empty(units)
    o_all = np.empty(units, dtype=np.int64)
    count = np.empty(_BUCKETS_PER_UNIT * units + 1, dtype=np.int64)
    for j in range(unit_keys.shape[0]):
        for i in range(m):
            if not needed[i]:
                continue
            a, b = start[i], start[i + 1]
            for u in range(a, b):
                z[u] = _normal(unit_keys[j], u)
            z_pool = _normal(pool_keys[j], i)
            median = MEDIAN_THRESHOLD_MA * math.exp(PERSON_THRESHOLD_SD * z_pool)
            o = o_all[: b - a]
            _stable_order(z[a:b], o, count[: _BUCKETS_PER_UNIT * (b - a) + 1])
            for q in range(b - a):
                order[j, a + q] = o[q]
                sorted_ma[j, a + q] = median * math.exp(pool_sd * z[a + o[q]])


# ----------------------------------------------------------------------- incremental MUNE


#: Stimuli whose band draws one pass computes together: two vectors of 8 doubles. Of 8, 16, 24
#: and 32, 16 was fastest (8 is not vectorised; longer blocks draw more past the last stimulus).
_BLOCK = 16


@numba.njit(inline="always")
def _block_fired(
    key, muscle, k0, s_blk, lo, hi, b_t, b_inv, b_amp, b_rank, sure_f, can_f, fired, guess
):
    """Nanovolts fired by the units ``lo:hi`` of a buffer in threshold order at the
    :data:`_BLOCK` stimuli ``k0, k0 + 1, ...`` of strengths ``s_blk`` (mA), into ``fired``
    (``guess``: scratch, one flag per stimulus).

    Unit by unit, stimulus by stimulus within the block (a loop of fixed length, which the
    compiler turns into whole vectors). Each unit decides as :func:`_band_fired` and the
    brute-force definition do: it fires for sure above its band (``T (1 + BAND rs) <= s``),
    never below it (``T (1 - BAND rs) >= s``), and within it when the uniform of its counter
    falls below ``Phi((s - T) / (rs T))`` as the table :func:`_phi` gives it. The vector loop
    compares with the polynomial :func:`_phi_approx` instead (no gathers from the table);
    where that could decide otherwise (:func:`_guess` unsure, about one unit-block in 10^4)
    the block's decisions of that unit are taken again from the table. Drawing the uniform
    outside the band too (and ignoring it) leaves every decision, and so every number, as
    one stimulus at a time gives it.
    """
    for q in range(_BLOCK):
        fired[q] = 0
    for b in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no negative-index wraparound
        t = b_t[b]
        inv = b_inv[b]
        amp = b_amp[b]
        sure_t = t * sure_f
        can_t = t * can_f
        c0 = _counter(muscle, b_rank[b], k0)
        doubt = 0  # stimuli whose uniform is too near the polynomial's probability
        for q in range(_BLOCK):
            s = s_blk[q]
            below, unsure = _guess(_uniform(key, c0 + q), (s - t) * inv)
            fires = (sure_t <= s) | ((can_t < s) & below)
            guess[q] = fires
            fired[q] += amp * fires
            doubt += (can_t < s) & (s < sure_t) & unsure
        if doubt:  # rare (about 1 unit-block in 10^4): decide those by the table
            for q in range(_BLOCK):
                s = s_blk[q]
                if can_t < s and s < sure_t:
                    fires = _uniform(key, c0 + q) < _phi((s - t) * inv)
                    fired[q] += amp * (np.int64(fires) - np.int64(guess[q]))


# Fused multiply-adds and reassociated sums (fastmath "contract", "reassoc"), no zero-division
# checks: 6% faster; the same numbers on a given machine whatever the chunk.
@numba.njit(cache=True, error_model="numpy", fastmath={"contract", "reassoc"})
def _incremental(
    sorted_ma, order, alive, fibres, rows, start, scale, cmap, keys, rs, noise_mv, detect_mv,
    step, target, max_stimuli, measured, out, count,
):
    """The compiled pass behind :func:`incremental_mune`, recording by recording.

    The stimuli rise geometrically whatever the responses, so the band draws of
    :data:`_BLOCK` stimuli are computed together (:func:`_block_fired`), then the responses
    are read one by one (McComas: nearest level, running means) until ``target`` increments,
    every living unit firing for sure, or ``max_stimuli``. The draws of the stimuli of the
    last block past the stop are never read: the result is that of one stimulus at a time
    (``tests/test_scans.py`` checks it against the brute-force definition).
    """
    n = rows.shape[0]
    m = start.shape[0] - 1
    width = 1
    for i in range(m):
        width = max(width, start[i + 1] - start[i])
    # The living units met so far, in threshold order: threshold, 1 / (rs T), SMUP, rank.
    b_t = np.empty(width)
    b_inv = np.empty(width)
    b_amp = np.empty(width, dtype=np.int64)  # SMUP in nanovolts
    b_rank = np.empty(width, dtype=np.int64)
    lev = np.empty(target + 1)  # level means; level 0 is the baseline
    lev_n = np.empty(target + 1)
    s_blk = np.empty(_BLOCK)  # the block's stimuli (mA)
    fired = np.empty(_BLOCK, dtype=np.int64)  # nanovolts fired in the band at each
    guess = np.empty(_BLOCK, dtype=np.bool_)  # a unit's decisions by the polynomial
    sure_f = 1.0 + BAND * rs
    can_f = 1.0 - BAND * rs
    for j in range(n):
        r = rows[j]
        key = keys[j]
        for i in range(m):
            a0 = start[i]
            a1 = start[i + 1]
            amp_scale = scale[j, i]
            count[j, i] = 0
            out[j, i] = 0.0
            if not measured[i]:
                out[j, i] = np.nan
                continue
            first = a0
            while first < a1 and not alive[r, a0 + order[r, first]]:
                first += 1
            if first == a1:
                continue
            last = a1 - 1
            while not alive[r, a0 + order[r, last]]:
                last -= 1
            all_sure = sorted_ma[r, last] * sure_f  # every living unit fires for sure above
            s = sorted_ma[r, first] * (1.0 - START * rs)  # just below the lowest threshold
            pos = first  # next sorted position to meet
            nb = 0  # living units met (their band reaches down to the block's last stimulus)
            lo = 0  # buffer entries below lo fire for sure from the block's first stimulus
            sure = 0  # nanovolts
            levels = 0
            stop = False
            for k0 in range(0, max_stimuli, _BLOCK):
                for q in range(_BLOCK):
                    s_blk[q] = s
                    s *= 1.0 + step
                while pos <= last and sorted_ma[r, pos] * can_f < s_blk[_BLOCK - 1]:
                    # Written whether the unit lives or not (no branch); only a living one is
                    # kept (nb moves on). The entry past the last living one is never read.
                    u = a0 + order[r, pos]
                    t = sorted_ma[r, pos]
                    b_t[nb] = t
                    b_inv[nb] = 1.0 / (rs * t)
                    b_amp[nb] = _nanovolts(fibres[r, u] * amp_scale)
                    b_rank[nb] = pos - a0
                    nb += alive[r, u]
                    pos += 1
                while lo < nb and b_t[lo] * sure_f <= s_blk[0]:
                    sure += b_amp[lo]
                    lo += 1
                _block_fired(
                    key, i, k0, s_blk, lo, nb, b_t, b_inv, b_amp, b_rank, sure_f, can_f, fired,
                    guess,
                )
                for q in range(min(_BLOCK, max_stimuli - k0)):
                    k = k0 + q
                    # One expression, as before: the fused multiply-add is contracted the same.
                    resp = (sure + fired[q]) * 1e-6 + noise_mv * _ndtri(
                        _uniform(key, _counter(i, _NOISE, k))
                    )
                    if k == 0:
                        lev[0] = resp
                        lev_n[0] = 1.0
                    else:
                        near = 0
                        gap = abs(resp - lev[0])
                        for v in range(1, levels + 1):
                            d = abs(resp - lev[v])
                            if d < gap:
                                gap = d
                                near = v
                        if gap <= detect_mv:  # the same level again: refine its mean
                            lev_n[near] += 1.0
                            lev[near] += (resp - lev[near]) / lev_n[near]
                        elif resp > lev[0] + detect_mv:  # a new increment
                            levels += 1
                            lev[levels] = resp
                            lev_n[levels] = 1.0
                    if levels == target or all_sure <= s_blk[q]:
                        stop = True
                        break
                if stop:
                    break
            count[j, i] = levels
            top = 0.0
            for v in range(1, levels + 1):
                top = max(top, lev[v] - lev[0])
            if top > 0.0:
                out[j, i] = cmap[j, i] * levels / top


def incremental_mune(
    sorted_ma: np.ndarray,
    order: np.ndarray,
    alive: np.ndarray,
    fibres: np.ndarray,
    rows: np.ndarray,
    start: np.ndarray,
    scale: np.ndarray,
    cmap_mv: np.ndarray,
    keys: np.ndarray,
    *,
    rs: float,
    noise_uv: float,
    detect_sd: float,
    step: float,
    increments: int,
    measured: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """MUNE of the muscles of some patients by incremental stimulation (McComas 1971).

    Args:
        sorted_ma, order: the chunk's thresholds from :func:`thresholds`.
        alive, fibres: (patients, units) the chunk's state.
        rows: (examined,) rows of the patients examined.
        start: (muscles + 1,) muscle blocks of the unit axis.
        scale: (examined, muscles) SMUP millivolts per fibre at this recording.
        cmap_mv: (examined, muscles) the CMAP the estimate divides.
        keys: (examined,) stream starts (:func:`progression.random.starts`).
        rs: threshold fluctuation (relative SD).
        noise_uv: recording noise SD (microvolts).
        detect_sd: a response is a new increment when it stands out from every level seen by
            more than this many noise SDs.
        step: relative rise of the stimulus from one stimulus to the next.
        increments: increments counted before the estimate (fewer if the units run out).
        measured: (muscles,) bool, the muscles to examine (default all); nan elsewhere.

    Returns:
        ``(mune, increments counted)``, each (examined, muscles); MUNE 0 where no unit is left
        or no increment stands out of the noise.
    """
    n, m = scale.shape
    out = np.zeros((n, m))
    count = np.zeros((n, m), dtype=np.int32)
    _incremental(
        sorted_ma, order, alive, fibres, np.asarray(rows, dtype=np.int64),
        np.asarray(start, dtype=np.int64),
        np.ascontiguousarray(scale, dtype=np.float64), np.ascontiguousarray(cmap_mv, np.float64),
        np.asarray(keys, dtype=np.uint64), float(rs), noise_uv / 1000.0,
        detect_sd * noise_uv / 1000.0, float(step), int(increments), MAX_STIMULI,
        np.ones(m, dtype=np.bool_) if measured is None else np.asarray(measured, dtype=np.bool_),
        out, count,
    )
    return out, count


# ---------------------------------------------------------------------------------- CMAP scan


@numba.njit(cache=True)
def _scan(
    sorted_ma, order, alive, fibres, start, rows, muscles, scale, keys, rs, noise_mv, n_stim,
    stimulus, amplitude,
):
    sure_f = 1.0 + BAND * rs
    can_f = 1.0 - BAND * rs
    for j in range(rows.shape[0]):
        r = rows[j]
        i = muscles[j]
        key = keys[j]
        a0 = start[i]
        a1 = start[i + 1]
        # The living units in threshold order, and their SMUPs summed in that order.
        b_t = np.empty(a1 - a0)
        b_inv = np.empty(a1 - a0)
        b_amp = np.empty(a1 - a0, dtype=np.int64)
        b_rank = np.empty(a1 - a0, dtype=np.int64)
        cum = np.zeros(a1 - a0 + 1, dtype=np.int64)
        nb = 0
        for q in range(a0, a1):
            u = a0 + order[r, q]
            if alive[r, u]:
                b_t[nb] = sorted_ma[r, q]
                b_inv[nb] = 1.0 / (rs * sorted_ma[r, q])
                b_amp[nb] = _nanovolts(fibres[r, u] * scale[j])
                b_rank[nb] = q - a0
                cum[nb + 1] = cum[nb] + b_amp[nb]
                nb += 1
        if nb:
            s_hi = b_t[nb - 1] * sure_f * (1.0 + SCAN_MARGIN)
            s_lo = b_t[0] * can_f * (1.0 - SCAN_MARGIN)
        else:  # no living unit: the pool's median threshold sets the range
            mid = sorted_ma[r, (a0 + a1) // 2]
            s_hi = 1.25 * mid
            s_lo = 0.8 * mid
        ds = (s_hi - s_lo) / (n_stim - 1)
        lo = nb  # entries below lo fire for sure
        hi = nb  # entries from hi on cannot fire
        for k in range(n_stim):
            s = s_hi - k * ds
            while hi > 0 and b_t[hi - 1] * can_f >= s:
                hi -= 1
            while lo > 0 and b_t[lo - 1] * sure_f > s:
                lo -= 1
            fired = cum[lo] + _band_fired(key, i, k, s, lo, hi, b_t, b_inv, b_amp, b_rank)
            stimulus[j, k] = s
            noise = noise_mv * _ndtri(_uniform(key, _counter(i, _NOISE, k)))
            amplitude[j, k] = fired * 1e-6 + noise


def scan(
    sorted_ma: np.ndarray,
    order: np.ndarray,
    alive: np.ndarray,
    fibres: np.ndarray,
    start: np.ndarray,
    rows: np.ndarray,
    muscles: np.ndarray,
    scale: np.ndarray,
    keys: np.ndarray,
    *,
    rs: float,
    noise_uv: float,
    stimuli: int,
) -> tuple[np.ndarray, np.ndarray]:
    """CMAP scans: ``stimuli`` stimuli falling linearly from supramaximal to subthreshold.

    The range runs from :data:`SCAN_MARGIN` above the highest threshold band of the living units
    to as far below the lowest (as an examiner sets it after a quick preliminary sweep).

    Args:
        sorted_ma, order, alive, fibres, start: as for :func:`incremental_mune`.
        rows: (scans,) patient row (in the state arrays) of each scan.
        muscles: (scans,) muscle index of each scan.
        scale: (scans,) SMUP millivolts per fibre of each scan.
        keys: (scans,) stream start of each scan's patient.
        rs, noise_uv: threshold fluctuation (relative SD) and recording noise (microvolts).
        stimuli: stimuli per scan (2 to :data:`MAX_STIMULI`).

    Returns:
        ``(stimulus_ma, amplitude_mv)``, each (scans, stimuli), in the order delivered.
    """
    if not 2 <= stimuli <= MAX_STIMULI:
        raise ValueError(f"stimuli must be in [2, {MAX_STIMULI}], got {stimuli}")
    k = len(rows)
    stimulus = np.empty((k, stimuli))
    amplitude = np.empty((k, stimuli))
    if k:
        _scan(
            sorted_ma, order, alive, fibres, np.asarray(start, dtype=np.int64),
            np.asarray(rows, dtype=np.int64), np.asarray(muscles, dtype=np.int64),
            np.asarray(scale, dtype=np.float64), np.asarray(keys, dtype=np.uint64), float(rs),
            noise_uv / 1000.0, int(stimuli), stimulus, amplitude,
        )
    return stimulus, amplitude


# ------------------------------------------------------------------------- reading a scan


def _gaps(amplitude: np.ndarray) -> np.ndarray:
    """Differences between consecutive responses sorted by size (all >= 0)."""
    return np.diff(np.sort(np.asarray(amplitude, dtype=np.float64)))


def steps(amplitude: np.ndarray, min_mv: float) -> np.ndarray:
    """Steps of one scan, largest first: gaps larger than ``min_mv`` (mV) between consecutive
    responses sorted by size. Sorting by size rather than by stimulus keeps the stimulus-to-
    stimulus fluctuation of units near threshold from reading as steps; a step is a response
    level no stimulus produced, as when one large unit fires or not.

    In a healthy muscle many small units make the scan a smooth sigmoid without steps; after
    loss and reinnervation the few large units show as steps and jumps.
    """
    g = _gaps(amplitude)
    return np.sort(g[g > min_mv])[::-1]


def d50(amplitude: np.ndarray) -> int:
    """D50 of one scan (Sleutjes et al. 2014 Clin Neurophysiol, first named N50): how
    many of the largest gaps between consecutive responses, sorted by size, make up half the
    maximal response. Large for a smooth healthy scan, small when a few large units carry the
    CMAP."""
    g = np.sort(_gaps(amplitude))[::-1]
    reached = np.cumsum(g) >= 0.5 * np.max(amplitude)
    return int(np.argmax(reached)) + 1 if reached.any() else len(g)


__all__ = ["BAND", "d50", "incremental_mune", "scan", "steps", "thresholds"]
