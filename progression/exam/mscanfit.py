"""MUNE by a model fit of the CMAP scan, in the manner of MScanFit (Bostock 2016).

A CMAP scan (:func:`progression.exam.scans.scan`) is a few hundred responses to stimuli falling
from supramaximal to subthreshold. MScanFit MUNE (Bostock 2016 Clin Neurophysiol 127:2454,
"Estimating motor unit numbers from a CMAP scan"; the protocol of Jacobsen, Bostock & Tankisi
2018 JoVE 136:e56805) reads it with a model made of motor units, each with a threshold, a
threshold variability (relative spread) and an amplitude; the number of units in the best
model is the estimate. It works in two stages (JoVE abstract): "first, a preliminary model is
generated based on the slope and variance of the points in the scan, and second, this model is
then refined by adjusting all the parameters to improve the fit", with units added and removed.
This module does the same, readably, in numpy:

1. **Ends.** The scan sorted by stimulus; the baseline and the maximal response are medians of
   its lowest and highest :data:`END_SHARE` of stimuli, the recording noise a robust SD of both
   ends (where no unit is in doubt). No response above :data:`RESPONSE_SD` noise SDs: no
   unit (``count = 0``).
2. **Preliminary model from slope and variance.** In windows of about two threshold spreads,
   the rise of the mean response ``R`` (a monotone fit of the scan, pool-adjacent-violators)
   is the sum of the amplitudes of the units whose thresholds lie there, and the excess variance
   over the noise ``E`` (around a straight line fitted in the window) integrates to
   ``sum a^2 sigma_T / sqrt(pi)`` (a unit with threshold T, spread ``sigma_T = rs T`` and
   amplitude a fires with probability p = Phi((s - T) / sigma_T), variance a^2 p (1 - p), whose
   integral over s is a^2 sigma_T / sqrt(pi)). So the window holds about
   ``R^2 sigma_T / (sqrt(pi) E W)`` units of width W: many small units where the scan is smooth,
   few where it jumps. Units are laid along the CMAP by these local sizes.
3. **Thresholds** of a model: where the monotone fit crosses the middle of each unit's share of
   the CMAP (units in threshold order); so a model is its sequence of amplitudes.
4. **Refinement.** The misfit of a model is the Gaussian deviance of the scan: each response
   against the model's mean ``mu(s) = sum a_j p_j(s)`` and variance ``noise^2 + sum a_j^2
   p_j (1 - p_j)``, ``sum (y - mu)^2 / v + log v``, plus :func:`penalty` per unit (the Bayesian
   information criterion, two parameters per unit: threshold and amplitude). Units are removed
   (two neighbours merged into one) and added (one split in two) while the penalised misfit
   falls, the best non-overlapping moves first. The variance term is what counts units: one unit
   of 2a firing at random has twice the variance of two units of a, so a scan's scatter fixes
   the unit size where the sigmoid is smooth, and its steps where it is not.

Simplifications against MScanFit, stated: every unit has the same relative spread (MScanFit
fits one per unit), thresholds are placed from the mean curve rather than fitted one by one, and
the misfit treats each response as Gaussian (moment matching) instead of scoring the nearest
combination of firing units. The estimate's bias is therefore not assumed but measured, against
the true count (README, "MUNE from simulated recordings, and CMAP scans").

Cost: tens of milliseconds per scan in numpy (README, Performance), against about 8
microseconds for a compiled incremental MUNE; ``exam.mune_method = "mscanfit"`` is an option,
incremental stimulation stays the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Share of the scan's stimuli at each end taken as subthreshold (lowest) and supramaximal
#: (highest): the baseline, the maximal response and the noise come from them.
END_SHARE = 0.05
#: A response exists when the maximal response exceeds the baseline by this many noise SDs.
RESPONSE_SD = 4.0
#: Units whose firing probability is within the band +-BAND spreads (as the simulated scans).
BAND = 3.0
#: Preliminary windows span this many threshold spreads.
WINDOW_SPREADS = 2.0
#: Refinement passes at most (each accepts every improving non-overlapping move).
MAX_PASSES = 200
#: Smallest noise SD the fit assumes (mV): 5 microvolts (a noise-free scan has none; chosen).
NOISE_FLOOR_MV = 0.005
#: Degrees of freedom of the Student-t errors of the deviance (heavy tails; chosen).
DOF = 4.0
#: A merge may worsen the deviance by this much (a weak parsimony; see :func:`refine`).
MERGE_TOLERANCE = 2.0
#: Smallest preliminary unit, in noise SDs (a smooth stretch with no visible scatter).
MIN_UNIT_SD = 0.5

#: Standard normal CDF tabulated on [-BAND, BAND] (0 below, 1 above, as the simulated units).
_GRID = np.linspace(-BAND, BAND, 3073)
_CDF = np.array([0.5 * math.erfc(-x / math.sqrt(2.0)) for x in _GRID])
_CDF[0], _CDF[-1] = 0.0, 1.0


def probability(x: np.ndarray) -> np.ndarray:
    """Firing probability at ``x`` threshold spreads above threshold (Phi, truncated at
    +-:data:`BAND` like the simulated threshold fluctuation)."""
    return np.interp(x, _GRID, _CDF)


def penalty(stimuli: int) -> float:
    """Penalty per unit in deviance units: BIC, two parameters (threshold, amplitude)."""
    return 2.0 * math.log(max(stimuli, 2))


@dataclass(frozen=True)
class Fit:
    """A fitted scan.

    Attributes:
        count: units in the best model (the MUNE); 0 without a response.
        thresholds: (count,) unit thresholds (stimulus units), ascending.
        amplitudes: (count,) unit amplitudes (mV).
        noise_mv: recording noise SD estimated from the scan's ends.
        cmap_mv: maximal response over the baseline.
        preliminary: units of the preliminary model (stage 2).
        deviance: penalised misfit of the final model.
    """

    count: int
    thresholds: np.ndarray
    amplitudes: np.ndarray
    noise_mv: float
    cmap_mv: float
    preliminary: int
    deviance: float


def isotonic(y: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit of ``y`` (pool adjacent violators)."""
    level: list[float] = []
    weight: list[int] = []
    for v in np.asarray(y, dtype=float):
        level.append(float(v))
        weight.append(1)
        while len(level) > 1 and level[-2] > level[-1]:
            w = weight[-2] + weight[-1]
            level[-2] = (level[-2] * weight[-2] + level[-1] * weight[-1]) / w
            weight[-2] = w
            level.pop()
            weight.pop()
    return np.repeat(level, weight)


def _place(amplitudes: np.ndarray, s: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Thresholds of units with these amplitudes (threshold order): where the monotone mean
    ``m`` (at stimuli ``s``, ascending) crosses the middle of each unit's share of the CMAP."""
    return _place_mid(np.cumsum(amplitudes) - amplitudes / 2.0, s, m)


def _moments(s: np.ndarray, t: np.ndarray, a: np.ndarray, rs: float):
    """Model mean and unit variance at stimuli ``s`` of units (``t``, ``a``)."""
    if len(t) == 0:
        z = np.zeros(len(s))
        return z, z.copy()
    p = probability((s[:, None] - t[None, :]) / (rs * t[None, :]))
    return p @ a, (p * (1.0 - p)) @ (a * a)


def _deviance(y, mu, var, noise2) -> float:
    """Deviance of the responses under Student-t errors with :data:`DOF` degrees of freedom
    around the model's mean, scaled by its SD: heavy tails, so that a unit firing far out in
    its threshold tail (as a Bernoulli does, rarely) does not outweigh the rest of the scan,
    while a wrong mean still costs."""
    v = var + noise2
    return float(np.sum((DOF + 1.0) * np.log1p((y - mu) ** 2 / (DOF * v)) + np.log(v)))


def preliminary(
    s: np.ndarray, y: np.ndarray, m: np.ndarray, noise_mv: float, rs: float
) -> np.ndarray:
    """Stage 2: the preliminary model's amplitudes (threshold order) from the slope and the
    excess variance of the scan in windows of :data:`WINDOW_SPREADS` threshold spreads
    (``s`` ascending, ``y`` baseline-corrected, ``m`` its monotone fit)."""
    k = len(s)
    ds = (s[-1] - s[0]) / max(k - 1, 1)
    width = max(8, int(math.ceil(WINDOW_SPREADS * rs * float(np.median(s)) / max(ds, 1e-12))))
    edges = list(range(0, k, width))
    if k - edges[-1] < width // 2 and len(edges) > 1:
        edges.pop()
    edges.append(k)
    rise, count = [], []
    noise2 = noise_mv**2
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        r = float(m[hi - 1] - (m[lo - 1] if lo else m[0]))
        if r <= 0.0:
            continue
        sw, yw = s[lo:hi], y[lo:hi]
        x = sw - sw.mean()
        slope = float(x @ (yw - yw.mean()) / max(float(x @ x), 1e-300))
        resid = yw - yw.mean() - slope * x
        excess = max(float(resid @ resid) / max(hi - lo - 2, 1) - noise2, 0.0)
        sigma_t = rs * float(sw.mean())
        w = float(sw[-1] - sw[0]) + ds
        n_max = r / (MIN_UNIT_SD * noise_mv)
        n = r * r * sigma_t / (math.sqrt(math.pi) * excess * w) if excess > 0 else n_max
        rise.append(r)
        count.append(min(n, n_max))
    if not rise:
        return np.zeros(0)
    rise_a, count_a = np.array(rise), np.array(count)
    total = float(count_a.sum())
    n_units = max(1, int(round(total)))
    # Unit boundaries along the CMAP, at equal steps of the cumulative count.
    cum_count = np.concatenate([[0.0], np.cumsum(count_a)])
    cum_amp = np.concatenate([[0.0], np.cumsum(rise_a)])
    bounds = np.interp(np.linspace(0.0, total, n_units + 1), cum_count, cum_amp)
    return np.diff(bounds)


def fit(
    stimulus: np.ndarray,
    amplitude: np.ndarray,
    *,
    rs: float = 0.015,
    noise_mv: float | None = None,
    unit_penalty: float | None = None,
    merge_tolerance: float = MERGE_TOLERANCE,
) -> Fit:
    """Fit one CMAP scan (stimuli in any order, responses in mV) with units of relative spread
    ``rs``; ``noise_mv`` (default: estimated from the scan's ends) and ``unit_penalty`` (default
    :func:`penalty`) as stated. Returns the :class:`Fit`; ``count`` is the MUNE."""
    order = np.argsort(stimulus, kind="stable")
    s = np.asarray(stimulus, dtype=float)[order]
    y = np.asarray(amplitude, dtype=float)[order]
    k = len(s)
    n_end = max(5, int(round(END_SHARE * k)))
    base, top = float(np.median(y[:n_end])), float(np.median(y[-n_end:]))
    if noise_mv is None:
        ends = np.concatenate([y[:n_end] - np.mean(y[:n_end]), y[-n_end:] - np.mean(y[-n_end:])])
        noise_mv = float(np.sqrt(ends @ ends / max(len(ends) - 2, 1)))
    noise_mv = max(float(noise_mv), NOISE_FLOOR_MV)
    cmap = top - base
    empty = np.zeros(0)
    if cmap <= RESPONSE_SD * noise_mv:
        return Fit(0, empty, empty, noise_mv, max(cmap, 0.0), 0, math.nan)
    y = y - base
    m = np.clip(isotonic(y), 0.0, cmap)  # no unit in the noise of either end
    amps = preliminary(s, y, m, noise_mv, rs)
    if len(amps) == 0:  # a response but no rise inside the scan: one unit
        amps = np.array([cmap])
    amps = amps * (cmap / amps.sum())  # the units make the maximal response
    n0 = len(amps)
    lam = penalty(k) if unit_penalty is None else float(unit_penalty)
    amps, t, dev = refine(s, y, m, amps, noise_mv, rs, lam, merge_tolerance)
    return Fit(len(amps), t, amps, noise_mv, cmap, n0, dev)


def _window(s: np.ndarray, t: np.ndarray, rs: float) -> tuple[int, int]:
    """Stimuli (index range into ascending ``s``) where units at thresholds ``t`` may fire
    at random."""
    lo = np.searchsorted(s, float(np.min(t)) * (1.0 - BAND * rs), side="left")
    hi = np.searchsorted(s, float(np.max(t)) * (1.0 + BAND * rs), side="right")
    return int(lo), int(hi)


def _moves(j: int, n: int, t: np.ndarray, a: np.ndarray, before: np.ndarray, s, m, rs):
    """Candidate moves at unit ``j``: (kind, first unit replaced, units replaced, new
    thresholds, new amplitudes). Thresholds of a new unit are tried where the mean curve puts
    it (:func:`_place_mid`) and where its parts were."""
    out = []
    if j + 1 < n:  # remove a unit: merge j and j + 1
        a_new = np.array([a[j] + a[j + 1]])
        at_mean = _place_mid(before[j] + a_new / 2.0, s, m)
        weighted = np.array([(t[j] * a[j] + t[j + 1] * a[j + 1]) / a_new[0]])
        out += [("merge", j, 2, at_mean, a_new), ("merge", j, 2, weighted, a_new)]
    halves = np.array([a[j] / 2.0, a[j] / 2.0])  # add a unit: split j in two
    out.append(("split", j, 1, _place_mid(before[j] + np.array([0.25, 0.75]) * a[j], s, m), halves))
    for d in (0.5, 1.0):
        out.append(("split", j, 1, t[j] * np.array([1.0 - d * rs, 1.0 + d * rs]), halves))
    return out


def refine(
    s: np.ndarray,
    y: np.ndarray,
    m: np.ndarray,
    amps: np.ndarray,
    noise_mv: float,
    rs: float,
    lam: float,
    merge_tolerance: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Stage 4: remove and add units while the penalised deviance falls.

    A unit is removed by merging two neighbours into one (accepted unless the deviance worsens
    by more than ``merge_tolerance``) and added by splitting one in two halves (accepted when
    the deviance improves by more than ``lam``). Each pass scores every candidate
    (:func:`_moves`) by the change of the deviance over the stimuli it touches, then applies
    the improving moves best first, skipping those next to a unit already changed. Starts from
    the preliminary amplitudes at the thresholds :func:`_place` gives them; returns the
    amplitudes, thresholds and penalised deviance of the final model.
    """
    noise2 = noise_mv * noise_mv
    a = np.asarray(amps, dtype=float)
    t = _place(a, s, m)
    credit = {"merge": merge_tolerance, "split": -lam}
    for _ in range(MAX_PASSES):
        mu, var = _moments(s, t, a, rs)
        n = len(a)
        before = np.concatenate([[0.0], np.cumsum(a)])
        best: dict[int, tuple] = {}  # first unit -> (gain, span, thresholds, amplitudes)
        for j in range(n):
            for kind, first, span, t_new, a_new in _moves(j, n, t, a, before, s, m, rs):
                old = slice(first, first + span)
                lo, hi = _window(s, np.concatenate([t[old], t_new]), rs)
                if hi <= lo:
                    continue
                sw = s[lo:hi]
                mu_o, var_o = _moments(sw, t[old], a[old], rs)
                mu_n, var_n = _moments(sw, t_new, a_new, rs)
                d0 = _deviance(y[lo:hi], mu[lo:hi], var[lo:hi], noise2)
                d1 = _deviance(y[lo:hi], mu[lo:hi] - mu_o + mu_n, var[lo:hi] - var_o + var_n,
                               noise2)
                gain = d0 - d1 + credit[kind]
                if gain > 1e-9 and gain > best.get(first, (0.0,))[0]:
                    best[first] = (gain, span, t_new, a_new)
        if not best:
            break
        touched = np.zeros(n + 1, dtype=bool)
        replace = {}
        for first, (_gain, span, t_new, a_new) in sorted(best.items(), key=lambda kv: -kv[1][0]):
            if touched[max(first - 1, 0) : min(first + span + 1, n)].any():
                continue  # neighbours share stimuli: one change at a time among them
            touched[first : first + span] = True
            replace[first] = (span, t_new, a_new)
        new_t, new_a, j = [], [], 0
        while j < n:
            if j in replace:
                span, t_new, a_new = replace[j]
                new_t.extend(t_new)
                new_a.extend(a_new)
                j += span
            else:
                new_t.append(t[j])
                new_a.append(a[j])
                j += 1
        order = np.argsort(new_t, kind="stable")
        t, a = np.array(new_t)[order], np.array(new_a)[order]
    mu, var = _moments(s, t, a, rs)
    return a, t, _deviance(y, mu, var, noise2) + lam * len(a)


def _place_mid(mid: np.ndarray, s: np.ndarray, m: np.ndarray) -> np.ndarray:
    """:func:`_place` for given cumulative midpoints."""
    k = np.clip(np.searchsorted(m, mid, side="left"), 1, len(m) - 1)
    lo, hi = m[k - 1], m[k]
    f = np.where(hi > lo, (mid - lo) / np.where(hi > lo, hi - lo, 1.0), 0.5)
    return s[k - 1] + np.clip(f, 0.0, 1.0) * (s[k] - s[k - 1])


def mune(stimulus: np.ndarray, amplitude: np.ndarray, *, rs: float = 0.015) -> np.ndarray:
    """MScanFit MUNE of several scans: (scans, stimuli) arrays -> (scans,) unit counts."""
    return np.array(
        [fit(s, a, rs=rs).count for s, a in zip(stimulus, amplitude, strict=True)], dtype=float
    )


__all__ = ["Fit", "fit", "isotonic", "mune", "penalty", "preliminary", "probability", "refine"]
