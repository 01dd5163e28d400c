"""Power by simulation: replicate randomised trials drawn from a trial run, every endpoint analysed
the way trialists analyse it, with type I error, Monte Carlo intervals and the true effect.

A replicate trial draws ``2 n`` distinct enrolled patients and splits them at random: the first
``n`` are seen in the treatment arm, the other ``n`` in placebo (each patient's other copy is
never seen, as in a real trial). A *null* replicate sees all ``2 n`` in placebo. Every endpoint is
analysed on the same patients in a replicate, as in one trial. Per-patient summaries are computed
once (:func:`analysis.endpoints.load_trial`); a replicate is a row of indices, and a batch of
replicates is analysed at once with whole-array numpy operations.

Analyses (each returns an estimate and a statistic ``z`` on the standard normal scale, positive
when the treatment arm's value is higher):

- ``slope``: linear mixed model with random intercept and random slope and fixed effects
  treatment x time, fitted by REML exactly from per-patient sums (see the comment above
  :class:`Cells`): Fisher scoring from moment estimates, then generalised least squares; Wald
  statistic referred to t on ``2n - 4`` degrees of freedom (between-patient), reported on the
  normal scale. It agrees with ``statsmodels`` MixedLM where that converges (tests). Two wrong
  analyses are here so that a test can show the type I error check catches them: without a
  random slope the between-patient variation in slope is taken for precision, and a true null
  is rejected far too often: ``slope_method="intercept"`` (random intercept only, the classic
  mistake) and ``"naive"`` (pooled OLS on all visits).
- ``change``: Welch t-test of the change from baseline at month T among patients seen at T.
- ``time``: log-rank test (ties: the hypergeometric variance), estimate the Cox hazard ratio
  (Breslow ties, Newton-Raphson).
- ``rank``: Wilcoxon-Mann-Whitney rank-sum test with the exact permutation variance of mid-ranks;
  estimate ``P(treated better) + P(tie)/2``.

The true effect comes from each enrolled patient's two counterfactual trajectories, observed in
full (no dropout; death still ends them): slopes and changes: the mean over patients of the
treated copy minus the placebo copy; time: the Cox hazard ratio of all treated copies against all
placebo copies; rank: ``P(treated copy better than placebo copy)`` over all pairs. That is the
quantity each analysis estimates, so ``mean_estimate - true_effect`` is the trial's bias.
"""

from __future__ import annotations

import base64
import html
import io
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import polars as pl
from scipy import special, stats

from analysis.endpoints import (
    ENDPOINTS,
    SLOPE_FIELDS,
    Endpoint,
    EndpointError,
    Summary,
    TrialData,
    TrialDesign,
    TrialOptions,
    load_trial,
    resolve,
    trial_design,
)
from analysis.io import RunReadError, open_run, run_status
from analysis.power import n_per_arm_random_slope

_N = NormalDist()

#: Replicates analysed together are capped at this many patient slots (memory, cache).
_BATCH_SLOTS = 400_000


class PowerError(ValueError):
    """A request that cannot be simulated; the message is one line for the user."""


# ---------------------------------------------------------------------------------------------
# Replicate draws


def draw_indices(pool: int, n_per_arm: int, replicates: int, seed: int, key: Sequence[int]):
    """``(replicates, 2 n)`` distinct indices into a pool of ``pool`` patients; columns ``:n`` are
    the treatment arm, ``n:`` placebo. The draws depend only on ``(seed, key, n)``."""
    if 2 * n_per_arm > pool:
        raise PowerError(f"{n_per_arm} per arm needs {2 * n_per_arm} patients; pool has {pool}")
    ss = np.random.SeedSequence(seed, spawn_key=(*key, n_per_arm))
    rng = np.random.default_rng(ss)
    out = np.empty((replicates, 2 * n_per_arm), dtype=np.int64)
    for r in range(replicates):
        out[r] = rng.choice(pool, 2 * n_per_arm, replace=False)
    return out


def _take(arrays: dict[str, np.ndarray], copy: int, idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[copy][idx] for k, v in arrays.items()}


# ---------------------------------------------------------------------------------------------
# Slopes: the random intercept and slope model, fitted exactly by REML from per-patient sums
#
# Patient i has n_i visits at times t_ij (design X_i = [1, t]), A_i = X_i'X_i, c_i = X_i'y_i and
# s_i = y_i'y_i. In y_i = X_i beta_g + X_i u_i + e_i with u_i ~ N(0, D), e ~ N(0, sigma2 I), every
# term of the (restricted) likelihood and its derivatives depends on the data only through
# A_i, c_i, s_i, via P_i = sigma2 I + A_i D: X'V^-1 X = P^-1 A, X'V^-1 y = P^-1 c, V^-1 =
# (I - X K X') / sigma2 with K = D P^-1 (push-through identity; no inverse of D or A is needed,
# so one-visit patients and a singular D are fine). Patients sharing a visit pattern (the same
# A) are pooled into a cell holding the count and the sums of c, c c' and s, so a replicate's fit
# costs a few operations per cell, not per patient.


class _M2:
    """A stack of 2 x 2 matrices held as four broadcastable arrays ``[[a, b], [c, d]]``:
    elementwise algebra, far faster than numpy's matmul on millions of tiny matrices."""

    __slots__ = ("a", "b", "c", "d")

    def __init__(self, a, b, c, d) -> None:
        self.a, self.b, self.c, self.d = a, b, c, d

    def __matmul__(self, o: _M2) -> _M2:
        return _M2(
            self.a * o.a + self.b * o.c,
            self.a * o.b + self.b * o.d,
            self.c * o.a + self.d * o.c,
            self.c * o.b + self.d * o.d,
        )

    def __add__(self, o: _M2) -> _M2:
        return _M2(self.a + o.a, self.b + o.b, self.c + o.c, self.d + o.d)

    def __sub__(self, o: _M2) -> _M2:
        return _M2(self.a - o.a, self.b - o.b, self.c - o.c, self.d - o.d)

    def scale(self, x) -> _M2:
        return _M2(self.a * x, self.b * x, self.c * x, self.d * x)

    def plus_diag(self, x) -> _M2:
        return _M2(self.a + x, self.b, self.c, self.d + x)

    @property
    def T(self) -> _M2:
        return _M2(self.a, self.c, self.b, self.d)

    def tr(self):
        return self.a + self.d

    def inv(self) -> _M2:
        det = self.a * self.d - self.b * self.c
        return _M2(self.d / det, -self.b / det, -self.c / det, self.a / det)

    def mv(self, x, y):
        return self.a * x + self.b * y, self.c * x + self.d * y

    def sum(self, axis) -> _M2:
        return _M2(*(np.sum(v, axis=axis) for v in (self.a, self.b, self.c, self.d)))

    def at(self, index) -> _M2:
        return _M2(*(np.asarray(v)[index] for v in (self.a, self.b, self.c, self.d)))


def _xtx(n, st, stt) -> _M2:
    return _M2(n, st, st, stt)


def visit_patterns(s: Summary) -> tuple[np.ndarray, np.ndarray]:
    """Each (copy, patient)'s visit pattern index and the patterns' ``(n, sum t, sum t^2)``
    (patterns, 3), cached on the summary."""
    if "patterns" not in s.cache:
        o = s.obs
        key = np.stack([o["n"].ravel(), o["st"].ravel(), o["stt"].ravel()], -1)
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        s.cache["patterns"] = (inv.reshape(o["n"].shape), uniq)
    return s.cache["patterns"]


@dataclass
class Cells:
    """Per replicate, group and visit pattern (arrays ``(replicates, groups, patterns)``):
    ``count``, ``c1 = sum c`` (two arrays), ``c2 = sum c c'``, ``ss = sum s``; ``a``: the
    patterns' ``X'X``."""

    count: np.ndarray
    c1: tuple[np.ndarray, np.ndarray]
    c2: _M2
    ss: np.ndarray
    a: _M2

    def rows(self, index: np.ndarray) -> Cells:
        """The cells of the replicates ``index``."""
        return Cells(
            self.count[index], (self.c1[0][index], self.c1[1][index]), self.c2.at(index),
            self.ss[index], self.a,
        )


def slope_cells(
    pattern: Sequence[np.ndarray], sums: Sequence[dict[str, np.ndarray]], table: np.ndarray
) -> Cells:
    """Pool each group's patients (arrays ``(replicates, patients)`` of pattern index and
    ``sy, sty, syy``) into visit-pattern cells; ``table`` is the patterns' ``(n, st, stt)``."""
    reps, n_pat, groups = pattern[0].shape[0], table.shape[0], len(pattern)
    size = reps * groups * n_pat
    rows = np.arange(reps)[:, None] * groups
    idx = np.concatenate([((rows + g) * n_pat + p).ravel() for g, p in enumerate(pattern)])
    sy = np.concatenate([s["sy"].ravel() for s in sums])
    sty = np.concatenate([s["sty"].ravel() for s in sums])
    syy = np.concatenate([s["syy"].ravel() for s in sums])

    def total(w=None):
        return np.bincount(idx, w, minlength=size).reshape(reps, groups, n_pat)

    c12 = total(sy * sty)
    return Cells(
        count=total(),
        c1=(total(sy), total(sty)),
        c2=_M2(total(sy * sy), c12, c12, total(sty * sty)),
        ss=total(syy),
        a=_xtx(table[:, 0], table[:, 1], table[:, 2]),
    )


def _moments(cells: Cells):
    """Starting values: pooled within-patient residual variance; covariance of the per-patient
    OLS lines minus its sampling part (patients with at least 2 and 3 visits)."""
    a, cnt = cells.a, cells.count
    n = a.a
    det = a.a * a.d - a.b * a.c
    ok = (n >= 2) & (det > 1e-9)
    ainv = _xtx(np.where(ok, a.d, 0.0), np.where(ok, -a.b, 0.0), np.where(ok, a.a, 0.0)).scale(
        1.0 / np.where(ok, det, 1.0)
    )
    # Over a cell: sum of theta = A^-1 c, of theta theta' and of the residual SS s - c'A^-1 c.
    th = ainv.mv(*cells.c1)
    th2 = ainv @ cells.c2 @ ainv
    rss = cells.ss - (ainv @ cells.c2).tr()
    ok3 = ok & (n >= 3)
    df = np.sum(np.where(ok3, cnt * (n - 2), 0.0), axis=(-1, -2))
    sigma2 = np.sum(np.where(ok3, rss, 0.0), axis=(-1, -2)) / np.maximum(df, 1.0)
    m = np.sum(np.where(ok, cnt, 0.0), axis=-1)  # (reps, groups)
    mx, my = (np.sum(x, axis=-1) / np.maximum(m, 1) for x in th)
    t2 = th2.sum(-1)
    scatter = (t2 - _M2(mx * mx, mx * my, my * mx, my * my).scale(m)).sum(-1)
    m_all = np.sum(m, -1)
    scatter = scatter.scale(1.0 / np.maximum(m_all - m.shape[-1], 1))
    mean_inv = ainv.scale(np.where(ok, cnt, 0.0)).sum((-1, -2)).scale(1.0 / np.maximum(m_all, 1))
    d = scatter - mean_inv.scale(sigma2)
    # Start inside the cone: at least a tenth of the raw scatter on the diagonal.
    daa = np.maximum(d.a, 0.1 * scatter.a)
    dbb = np.maximum(d.d, 0.1 * scatter.d)
    lim = 0.9 * np.sqrt(daa * dbb)
    dab = np.clip(d.b, -lim, lim)
    scale = (scatter.a, scatter.d)
    return np.maximum(sigma2, 1e-12), _xtx(daa, dab, dbb), scale


_CELL = (slice(None), None, None)  # (replicates,) -> (replicates, groups, patterns)


def _gls(cells: Cells, sigma2: np.ndarray, d: _M2):
    """GLS per group given the variance components: ``beta`` (two arrays (reps, groups)), its
    covariance ``F`` (reps, groups), and the per-cell ``Q = P^-1`` and ``W = P^-1 A``."""
    q = (cells.a @ d.at(_CELL)).plus_diag(sigma2[_CELL]).inv()
    w = q @ cells.a
    f = w.scale(cells.count).sum(-1).inv()
    v = tuple(np.sum(x, axis=-1) for x in q.mv(*cells.c1))
    return f.mv(*v), f, q, w


def reml(cells: Cells, iterations: int = 100, tol: float = 1e-7, random_slope: bool = True):
    """REML estimates ``(sigma2, D)`` of the random intercept and slope model, per replicate,
    by Fisher scoring from the moment estimates (exact score, expected information), each
    replicate until its parameters move by less than ``tol`` relative to their scale (usually
    5-10 steps; small trials near the boundary take more). ``random_slope=False`` fits the
    random-intercept model (slope variance and covariance fixed at 0)."""
    sigma2, d, (sa, sb) = _moments(cells)
    if not random_slope:
        d = _xtx(d.a, np.zeros_like(d.a), np.zeros_like(d.a))
    active = np.arange(len(sigma2))
    for _ in range(iterations):
        sub = cells.rows(active)
        s2_old, d_old = sigma2[active], d.at(active)
        s2_new, d_new = _scoring_step(sub, s2_old, d_old, random_slope)
        sigma2[active] = s2_new
        for name in ("a", "b", "c", "d"):
            getattr(d, name)[active] = getattr(d_new, name)
        moved = (
            (np.abs(s2_new - s2_old) > tol * s2_old)
            | (np.abs(d_new.a - d_old.a) > tol * (d_old.a + 1e-3 * sa[active]))
            | (np.abs(d_new.d - d_old.d) > tol * (d_old.d + 1e-3 * sb[active]))
            | (np.abs(d_new.b - d_old.b) > tol * np.sqrt((d_old.a + 1e-3 * sa[active])
                                                        * (d_old.d + 1e-3 * sb[active])))
        )
        active = active[moved]
        if not active.size:
            break
    return sigma2, d


def _scoring_step(
    cells: Cells, sigma2: np.ndarray, d: _M2, random_slope: bool = True
) -> tuple[np.ndarray, _M2]:
    """One Fisher scoring step of the REML variance components (without ``random_slope``: of
    sigma2 and the intercept variance only)."""
    a, cnt, (c1x, c1y), c2 = cells.a, cells.count, cells.c1, cells.c2
    n = a.a
    (bx, by), f, q, w = _gls(cells, sigma2, d)
    bx, by = bx[..., None], by[..., None]
    k = d.at(_CELL) @ q
    abx, aby = a.mv(bx, by)
    u = _M2(
        c2.a - 2 * c1x * abx + cnt * abx * abx,
        c2.b - c1x * aby - abx * c1y + cnt * abx * aby,
        c2.b - c1x * aby - abx * c1y + cnt * abx * aby,
        c2.d - 2 * c1y * aby + cnt * aby * aby,
    )
    rr = cells.ss - 2 * (bx * c1x + by * c1y) + cnt * (bx * abx + by * aby)
    s2 = sigma2[_CELL]
    s4 = s2 * s2
    ka = k @ a
    fc = f.at((Ellipsis, None))
    g = ((q @ u @ q.T) + (w @ fc @ w - w).scale(cnt)).scale(0.5).sum((1, 2))
    aka = a @ ka
    h = (a - aka.scale(2.0) + aka @ ka).scale(1.0 / s4)
    tr_ka = ka.tr()
    quad = (rr - 2 * (k @ u).tr() + (ka @ k @ u).tr()) / s4
    score_s = np.sum(
        0.5 * (quad - cnt * (n - tr_ka) / s2 + cnt * (fc @ h).tr()), axis=(1, 2)
    )
    score = np.stack([score_s, g.a, 2 * g.b, g.d], -1)

    def tot(x):
        return np.sum(cnt * x, axis=(1, 2))

    w11, w12, w22 = w.a, w.b, w.d
    i_ss = tot(0.5 * (n - 2 * tr_ka + (ka @ ka).tr()) / s4)
    i_sa, i_sb, i_sd = tot(0.5 * h.a), tot(h.b), tot(0.5 * h.d)
    i_aa, i_ab, i_ad = tot(0.5 * w11 * w11), tot(w11 * w12), tot(0.5 * w12 * w12)
    i_bb, i_bd, i_dd = tot(w11 * w22 + w12 * w12), tot(w22 * w12), tot(0.5 * w22 * w22)
    info = np.stack(
        [
            np.stack([i_ss, i_sa, i_sb, i_sd], -1),
            np.stack([i_sa, i_aa, i_ab, i_ad], -1),
            np.stack([i_sb, i_ab, i_bb, i_bd], -1),
            np.stack([i_sd, i_ad, i_bd, i_dd], -1),
        ],
        -2,
    )
    if not random_slope:
        info, score = info[:, :2, :2], score[:, :2]
    step = np.linalg.solve(info + 1e-12 * np.eye(len(score[0])), score[..., None])[..., 0]
    if not random_slope:
        daa = np.maximum(d.a + step[:, 1], 0.0)
        zero = np.zeros_like(daa)
        return np.maximum(sigma2 + step[:, 0], 0.25 * sigma2), _xtx(daa, zero, zero)
    daa = np.maximum(d.a + step[:, 1], 0.0)
    dbb = np.maximum(d.d + step[:, 3], 0.0)
    lim = np.sqrt(daa * dbb)
    d_new = _xtx(daa, np.clip(d.b + step[:, 2], -lim, lim), dbb)
    return np.maximum(sigma2 + step[:, 0], 0.25 * sigma2), d_new


def _patterns_of(trt: dict[str, np.ndarray], pl_: dict[str, np.ndarray]):
    key = np.stack(
        [np.concatenate([g[f] for g in (trt, pl_)], -1).ravel() for f in ("n", "st", "stt")], -1
    )
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.reshape(trt["sy"].shape[0], -1)
    k = trt["sy"].shape[-1]
    return [inv[:, :k], inv[:, k:]], uniq


def slope_test(
    trt: dict[str, np.ndarray],
    pl_: dict[str, np.ndarray],
    method: str = "lmm",
    patterns: tuple[Sequence[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Difference in mean slope (treated - placebo) and its Wald z, per replicate.

    Args:
        trt, pl_: per-patient sums (``n, st, stt, sy, sty, syy``), arrays ``(replicates, n)``
            (with ``patterns`` given, ``sy, sty, syy`` suffice).
        method: ``"lmm"`` (random intercept and slope, REML, see above); for showing what goes
            wrong without a random slope: ``"intercept"`` (random intercept only) or
            ``"naive"`` (pooled OLS over all visits, independent errors).
        patterns: ``([pattern_trt, pattern_pl], table)`` as from :func:`visit_patterns`;
            computed here when not given.
    """
    if method == "naive":
        return _naive_slope_test(trt, pl_)
    if method not in ("lmm", "intercept"):
        raise ValueError(f"method must be 'lmm', 'intercept' or 'naive', got {method!r}")
    pattern, table = patterns if patterns is not None else _patterns_of(trt, pl_)
    cells = slope_cells(pattern, [trt, pl_], table)
    sigma2, d = reml(cells, random_slope=method == "lmm")
    (_, by), f, _, _ = _gls(cells, sigma2, d)
    est = by[:, 0] - by[:, 1]
    seen = np.sum(np.where(table[:, 0] > 0, cells.count, 0.0), axis=(1, 2))
    return est, _t_to_z(est / np.sqrt(f.d[:, 0] + f.d[:, 1]), seen - 4)


def _t_to_z(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """A t statistic on ``df`` degrees of freedom as the normal quantile of the same tail."""
    df = np.maximum(np.nan_to_num(df, nan=1.0), 1.0)
    a = np.abs(np.nan_to_num(t))
    return np.sign(t) * -special.ndtri(special.stdtr(df, -a))  # lower tail: no rounding to 1


def variance_components(s: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """REML ``(sigma2, D)`` of one group of patients (arrays ``(patients,)`` of sums)."""
    one = {k: v[None] for k, v in s.items()}
    key = np.stack([s["n"], s["st"], s["stt"]], -1)
    table, inv = np.unique(key, axis=0, return_inverse=True)
    sigma2, d = reml(slope_cells([inv.reshape(1, -1)], [one], table), iterations=30)
    return float(sigma2[0]), np.array([[d.a[0], d.b[0]], [d.c[0], d.d[0]]])


def _ols_lines(s: dict[str, np.ndarray]):
    """Per-patient OLS slope, residual SS and the slope's ``(X'X)^-1`` entry, and a mask."""
    n, st, stt, sy, sty, syy = (s[f] for f in SLOPE_FIELDS)
    det = n * stt - st * st
    ok = (n >= 2) & (det > 1e-9)
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    a = (stt * sy - st * sty) * inv
    b = (n * sty - st * sy) * inv
    rss = np.where(ok, np.maximum(syy - a * sy - b * sty, 0.0), 0.0)
    return b, rss, ok, n * inv


def _naive_slope_test(trt, pl_):
    sums = [{f: np.sum(g[f], axis=-1) for f in SLOPE_FIELDS} for g in (trt, pl_)]
    out = []
    rss_total = 0.0
    for s in sums:
        b, rss, _, ibb = _ols_lines(s)
        out.append((b, ibb))
        rss_total = rss_total + rss
    nobs = sums[0]["n"] + sums[1]["n"]
    sigma2 = rss_total / np.maximum(nobs - 4, 1.0)
    est = out[0][0] - out[1][0]
    return est, est / np.sqrt(sigma2 * (out[0][1] + out[1][1]))


# ---------------------------------------------------------------------------------------------
# Change from baseline, time to event, ranks


def change_test(trt: dict[str, np.ndarray], pl_: dict[str, np.ndarray]):
    """Welch t-test of the change at month T among patients seen at T (nan: not seen)."""
    stats_ = []
    for g in (trt, pl_):
        x = g["change"]
        ok = np.isfinite(x)
        m = np.sum(ok, axis=-1).astype(float)
        mean = np.sum(np.where(ok, x, 0.0), axis=-1) / np.maximum(m, 1)
        var = np.sum(np.where(ok, (x - mean[..., None]) ** 2, 0.0), axis=-1) / np.maximum(m - 1, 1)
        stats_.append((m, mean, var / np.maximum(m, 1)))
    (m1, x1, e1), (m0, x0, e0) = stats_
    se2 = e1 + e0
    est = x1 - x0
    t = est / np.sqrt(np.where(se2 > 0, se2, np.nan))
    df = se2**2 / (e1**2 / np.maximum(m1 - 1, 1) + e0**2 / np.maximum(m0 - 1, 1))
    return est, _t_to_z(t, df)


def _revcumsum(x: np.ndarray) -> np.ndarray:
    return np.cumsum(x[..., ::-1], axis=-1)[..., ::-1]


def survival_test(time_: np.ndarray, event: np.ndarray, x: np.ndarray, iterations: int = 10):
    """Log-rank z (positive: group ``x == 1`` has more events than expected) and the Cox log
    hazard ratio of ``x == 1`` against ``x == 0``, per row of ``(replicates, patients)`` arrays.

    With one binary covariate the Cox risk-set sums are ``n0 + exp(beta) n1`` over those at
    risk, so Newton-Raphson needs only the at-risk counts the log-rank test already has."""
    order = np.argsort(time_, axis=-1)
    t = np.take_along_axis(time_, order, -1)
    d = np.take_along_axis(event, order, -1)
    g = np.take_along_axis(x, order, -1).astype(float)
    m = t.shape[-1]
    pos = np.arange(m)
    new = np.ones(t.shape, dtype=bool)
    new[..., 1:] = t[..., 1:] > t[..., :-1]
    end = np.ones(t.shape, dtype=bool)
    end[..., :-1] = new[..., 1:]
    first = np.maximum.accumulate(np.where(new, pos, 0), axis=-1)
    last = np.minimum.accumulate(np.where(end, pos, m)[..., ::-1], axis=-1)[..., ::-1]
    n_risk = (m - first).astype(float)
    n1_risk = np.take_along_axis(_revcumsum(g), first, -1)
    cum_d = np.cumsum(d, axis=-1)
    d_block = np.take_along_axis(cum_d, last, -1) - np.take_along_axis(cum_d - d, first, -1)
    frac = n1_risk / n_risk
    o_minus_e = np.sum(d * (g - frac), axis=-1)
    ties = np.where(n_risk > 1, (n_risk - d_block) / np.maximum(n_risk - 1, 1), 1.0)
    var = np.sum(d * frac * (1 - frac) * ties, axis=-1)
    z = o_minus_e / np.sqrt(np.where(var > 0, var, np.nan))
    # Cox (Breslow ties): only event rows contribute.
    n0_risk = n_risk - n1_risk
    events_1 = np.sum(d * g, axis=-1)
    beta = np.zeros(t.shape[:-1])
    for _ in range(iterations):
        r1 = np.exp(beta)[..., None] * n1_risk
        p = r1 / (n0_risk + r1)
        score = events_1 - np.sum(d * p, axis=-1)
        info = np.sum(d * p * (1 - p), axis=-1)
        step = np.where(info > 0, score / np.where(info > 0, info, 1.0), 0.0)
        beta = np.clip(beta + np.clip(step, -2, 2), -10, 10)
    # Without an event in each group the Cox estimate does not exist (it runs off to +-inf).
    events_0 = np.sum(d * (1 - g), axis=-1)
    beta = np.where((events_1 > 0) & (events_0 > 0), beta, np.nan)
    return np.nan_to_num(z), beta


def rank_test(key1: np.ndarray, key0: np.ndarray):
    """Wilcoxon-Mann-Whitney: ``P(key1 > key0) + P(tie)/2`` and z, per row."""
    both = np.concatenate([key1, key0], axis=-1)
    n1, n0 = key1.shape[-1], key0.shape[-1]
    n = n1 + n0
    r = stats.rankdata(both, axis=-1)
    u = np.sum(r[..., :n1], axis=-1) - n1 * (n1 + 1) / 2
    var = n1 * n0 / (n * (n - 1)) * np.sum((r - (n + 1) / 2) ** 2, axis=-1)
    z = (u - n1 * n0 / 2) / np.sqrt(np.where(var > 0, var, np.nan))
    return u / (n1 * n0), np.nan_to_num(z)


def analyse(
    summary: Summary, idx: np.ndarray, copy: int, slope_method: str = "lmm"
) -> tuple[np.ndarray, np.ndarray]:
    """One endpoint over a batch of replicates: ``(estimate, z)`` arrays.

    Args:
        summary: the endpoint's per-patient summaries.
        idx: ``(replicates, 2 n)`` pool indices; ``:n`` treated, ``n:`` placebo.
        copy: which copy the treated half is seen in (0, placebo, for a null trial).
        slope_method: ``"lmm"``, ``"intercept"`` or ``"naive"`` for slope endpoints.
    """
    k = idx.shape[-1] // 2
    i1, i0 = idx[..., :k], idx[..., k:]
    kind = summary.endpoint.kind
    obs = summary.obs
    if kind == "slope" and slope_method != "naive":
        obs = {f: obs[f] for f in ("sy", "sty", "syy")}
        pattern, table = visit_patterns(summary)
        a1, a0 = _take(obs, copy, i1), _take(obs, 0, i0)
        return slope_test(a1, a0, slope_method, ([pattern[copy][i1], pattern[0][i0]], table))
    a1, a0 = _take(obs, copy, i1), _take(obs, 0, i0)
    if kind == "slope":
        return slope_test(a1, a0, slope_method)
    if kind == "change":
        return change_test(a1, a0)
    if kind == "time":
        t = np.concatenate([a1["time"], a0["time"]], axis=-1)
        e = np.concatenate([a1["event"], a0["event"]], axis=-1)
        x = np.zeros(t.shape)
        x[..., :k] = 1.0
        z, beta = survival_test(t, e, x)
        return beta, z
    if kind == "rank":
        return rank_test(a1["key"], a0["key"])
    raise ValueError(f"unknown endpoint kind {kind!r}")


def true_effect(summary: Summary, copy: int) -> float:
    """The effect no trial can see: from each patient's two counterfactual copies, in full."""
    kind = summary.endpoint.kind
    f = summary.full
    if copy == 0:
        return {"slope": 0.0, "change": 0.0, "time": 1.0, "rank": 0.5}[kind]
    if kind == "slope":
        b1, _, ok1, _ = _ols_lines({k: v[copy] for k, v in f.items()})
        b0, _, ok0, _ = _ols_lines({k: v[0] for k, v in f.items()})
        both = ok1 & ok0
        return float(np.mean(b1[both] - b0[both])) if both.any() else math.nan
    if kind == "change":
        d = f["change"][copy] - f["change"][0]
        return float(np.nanmean(d)) if np.isfinite(d).any() else math.nan
    if kind == "time":
        t = np.concatenate([f["time"][copy], f["time"][0]])[None]
        e = np.concatenate([f["event"][copy], f["event"][0]])[None]
        x = np.zeros(t.shape)
        x[:, : f["time"].shape[1]] = 1.0
        _, beta = survival_test(t, e, x, iterations=25)
        return float(np.exp(beta[0]))
    if kind == "rank":
        est, _ = rank_test(f["key"][copy][None], f["key"][0][None])
        return float(est[0])
    raise ValueError(f"unknown endpoint kind {kind!r}")


# ---------------------------------------------------------------------------------------------
# Power


def _rejects(z: np.ndarray, better: int, alpha: float, sided: int) -> np.ndarray:
    if sided == 1:
        return better * z > _N.inv_cdf(1 - alpha)
    return np.abs(z) > _N.inv_cdf(1 - alpha / 2)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval of ``k`` successes in ``n`` trials."""
    a = 1 - level
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


class _Progress:
    """One-line progress on stderr (steps done, ETA), only when enabled."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self.start = self.last = time.monotonic()

    def step(self, label: str) -> None:
        self.done += 1
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.1 and self.done < self.total):
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate
        filled = int(30 * self.done / self.total)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {label:<24} "
            f"ETA {int(eta) // 60}:{int(eta) % 60:02d} "
        )
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def check_request(
    data: TrialData, n_per_arm: Sequence[int], replicates: int, alpha: float, sided: int
) -> None:
    """Raise :class:`PowerError` with one line for requests that make no sense."""
    if not (isinstance(alpha, float | int) and 0 < alpha < 1) or alpha != alpha:
        raise PowerError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    if sided not in (1, 2):
        raise PowerError(f"sided must be 1 or 2, got {sided!r}")
    if not isinstance(replicates, int) or replicates < 10:
        raise PowerError(f"replicates must be an integer of at least 10, got {replicates!r}")
    if not n_per_arm:
        raise PowerError("no sample size given (--n-per-arm 50,100,200)")
    bad = [n for n in n_per_arm if not isinstance(n, int) or n < 2]
    if bad:
        raise PowerError(f"n per arm must be integers of at least 2, got {bad[0]!r}")
    if max(n_per_arm) > data.max_n_per_arm:
        raise PowerError(_too_many(max(n_per_arm), len(data.ids), bool(data.options.enrich)))


def _too_many(n: int, pool: int, enriched: bool) -> str:
    who = "enrolled patients meeting the enrichment" if enriched else "enrolled patients"
    return (
        f"{n} per arm is more than the run holds: {pool} {who}, each used in one arm only, "
        f"allow at most {pool // 2} per arm"
    )


def simulate_power(
    data: TrialData,
    n_per_arm: Sequence[int],
    replicates: int = 1000,
    alpha: float = 0.05,
    sided: int = 2,
    seed: int = 0,
    comparisons: Sequence[str] = ("treatment", "null"),
    slope_method: str = "lmm",
    progress: bool = False,
) -> pl.DataFrame:
    """Power and type I error of every endpoint in ``data`` by simulated trials.

    Args:
        data: per-patient summaries from :func:`analysis.endpoints.load_trial`.
        n_per_arm: sample sizes per arm.
        replicates: trials per sample size and comparison.
        alpha: significance level (one-sided level with ``sided=1``, in the direction of benefit).
        sided: 1 or 2.
        seed: the same seed gives the same numbers.
        comparisons: ``treatment`` (each treatment arm against placebo) and/or ``null``
            (placebo against placebo).
        slope_method: ``"lmm"``, or ``"intercept"`` / ``"naive"`` (see :func:`slope_test`).
        progress: draw a progress line on stderr.

    Returns:
        One row per endpoint, comparison, arm and n: ``endpoint, comparison, arm, n_per_arm,
        replicates, alpha, sided, rejections, power, ci_low, ci_high`` (95% Clopper-Pearson),
        ``mean_estimate`` (hazard ratios: geometric mean over the replicates with events in
        both arms, where the Cox estimate exists), ``sd_estimate`` (hazard ratios: of the log),
        ``true_effect`` and ``unit``.
    """
    n_per_arm = [int(n) for n in n_per_arm]
    check_request(data, n_per_arm, replicates, alpha, sided)
    jobs = []
    for comparison in comparisons:
        if comparison == "treatment":
            jobs += [(comparison, c, data.arms[c]) for c in range(1, len(data.arms))]
        elif comparison == "null":
            jobs.append((comparison, 0, data.arms[0]))
        else:
            raise PowerError(f"comparison must be 'treatment' or 'null', got {comparison!r}")
    truths = {
        (name, copy): true_effect(s, copy)
        for name, s in data.summaries.items()
        for _, copy, _ in jobs
    }
    bar = _Progress(len(jobs) * len(n_per_arm), progress)
    rows = []
    for comparison, copy, arm in jobs:
        for n in n_per_arm:
            key = (1 if comparison == "treatment" else 0, copy)
            idx = draw_indices(len(data.ids), n, replicates, seed, key)
            batch = max(1, _BATCH_SLOTS // (2 * n))
            est = {k: np.empty(replicates) for k in data.summaries}
            zs = {k: np.empty(replicates) for k in data.summaries}
            for lo in range(0, replicates, batch):
                part = idx[lo : lo + batch]
                for name, s in data.summaries.items():
                    e, z = analyse(s, part, copy, slope_method)
                    est[name][lo : lo + batch] = e
                    zs[name][lo : lo + batch] = z
            for name, s in data.summaries.items():
                ep = s.endpoint
                k = int(np.sum(_rejects(zs[name], ep.better, alpha, sided)))
                lo_, hi_ = clopper_pearson(k, replicates)
                e = est[name]
                finite = e[np.isfinite(e)]
                mean = float(np.mean(finite)) if finite.size else math.nan
                sd = float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan
                if ep.kind == "time":
                    mean = math.exp(mean)
                rows.append(
                    {
                        "endpoint": name,
                        "comparison": comparison,
                        "arm": arm,
                        "n_per_arm": n,
                        "replicates": replicates,
                        "alpha": float(alpha),
                        "sided": sided,
                        "rejections": k,
                        "power": k / replicates,
                        "ci_low": lo_,
                        "ci_high": hi_,
                        "mean_estimate": mean,
                        "sd_estimate": sd,
                        "true_effect": truths[(name, copy)],
                        "unit": ep.unit,
                    }
                )
            bar.step(f"{comparison} {arm} n={n}")
    return pl.DataFrame(rows, schema_overrides={"n_per_arm": pl.Int64, "sided": pl.Int8})


# ---------------------------------------------------------------------------------------------
# Sample size from the power curve


def _crossing(n: np.ndarray, p: np.ndarray, target: float, replicates: int):
    """``n`` where the curve ``p(n)`` first reaches ``target``, by linear interpolation of
    ``probit(p)`` against ``sqrt(n)`` (a straight line for a Wald test); ``(n, how)``."""
    eps = 0.5 / replicates
    q = np.array([_N.inv_cdf(min(max(x, eps), 1 - eps)) for x in p])
    x = np.sqrt(n.astype(float))
    qt = _N.inv_cdf(target)
    above = np.nonzero(p >= target)[0]
    if len(above) and above[0] > 0:
        i = above[0]
        if q[i] == q[i - 1]:
            return float(n[i]), "interpolated"
        s = x[i - 1] + (qt - q[i - 1]) * (x[i] - x[i - 1]) / (q[i] - q[i - 1])
        return float(s * s), "interpolated"
    if len(above):
        return float(n[0]), "at or below the smallest n"
    return math.nan, "above the largest n"


def sample_size(power: pl.DataFrame, targets: Sequence[float] = (0.8, 0.9)) -> pl.DataFrame:
    """Per endpoint and treatment arm: n per arm for each target power, interpolated on the
    simulated curve, with an interval from the curves of the power's 95% limits.

    Returns:
        ``endpoint, arm, n80, n80_low, n80_high, n80_how, n90, ...``, rounded up to whole
        patients (null when the target is not reached within the simulated sizes), then
        ``type_I_error`` (null trials' rejections pooled over all sizes; null without null
        trials), ``true_effect`` and ``unit``.
    """
    rows = []
    null = power.filter(pl.col("comparison") == "null")
    type1 = {
        e: float(g["rejections"].sum() / g["replicates"].sum())
        for (e,), g in null.group_by(["endpoint"])
    }
    trt = power.filter(pl.col("comparison") == "treatment").sort("n_per_arm")
    for (endpoint, arm), g in trt.group_by(["endpoint", "arm"], maintain_order=True):
        n = g["n_per_arm"].to_numpy()
        reps = int(g["replicates"][0])
        row: dict = {"endpoint": endpoint, "arm": arm}
        for target in targets:
            tag = f"n{round(target * 100)}"
            mid, how = _crossing(n, g["power"].to_numpy(), target, reps)
            low, _ = _crossing(n, g["ci_high"].to_numpy(), target, reps)
            high, _ = _crossing(n, g["ci_low"].to_numpy(), target, reps)
            row[tag] = _ceil(mid)
            row[f"{tag}_low"] = _ceil(low)
            row[f"{tag}_high"] = _ceil(high)
            row[f"{tag}_how"] = how
        row["type_I_error"] = type1.get(endpoint)
        row["true_effect"] = float(g["true_effect"][0])
        row["unit"] = g["unit"][0]
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def _ceil(x: float) -> int | None:
    return None if not math.isfinite(x) else int(math.ceil(x - 1e-9))


# ---------------------------------------------------------------------------------------------
# Closed form check


def closed_form_n(
    data: TrialData,
    endpoint: str,
    alpha: float = 0.05,
    power: float = 0.8,
    sided: int = 2,
    copy: int = 1,
) -> dict:
    """Edland's random-slope n per arm, fed with variance components estimated from the placebo
    arm (all its patients, as seen, by the moments of :func:`variance_components`), the true
    effect as ``delta`` and the analysed visit months. No dropout or death enters the formula.
    """
    s = data.summaries[endpoint]
    if s.endpoint.kind != "slope":
        raise PowerError(f"{endpoint}: the random-slope closed form needs a slope endpoint")
    sigma2, d = variance_components({k: v[0] for k, v in s.obs.items()})
    delta = true_effect(s, copy)
    n = n_per_arm_random_slope(
        delta, float(d[1, 1]), sigma2, list(data.times), alpha=alpha, power=power, sided=sided
    )
    return {"n": n, "delta": delta, "sigma2_slope": float(d[1, 1]), "sigma2_error": sigma2}


# ---------------------------------------------------------------------------------------------
# Synthetic data from the random-slope model (checks the machinery apart from the engine)


def random_slope_trial(
    patients: int,
    delta: float,
    sigma2_slope: float,
    sigma2_error: float,
    times: Sequence[float],
    seed: int = 0,
    mean_slope: float = -1.0,
    sigma2_intercept: float = 25.0,
) -> TrialData:
    """A :class:`TrialData` whose one endpoint ``slope`` is simulated exactly from
    ``y = b0 + (mean_slope + delta [treated] + u1) t + u0 + e``; each patient's treated copy
    shares his ``u0, u1, e`` with his placebo copy (common random numbers)."""
    rng = np.random.default_rng(seed)
    t = np.asarray(times, dtype=float)
    u0 = rng.normal(0, math.sqrt(sigma2_intercept), patients)
    u1 = rng.normal(0, math.sqrt(sigma2_slope), patients)
    e = rng.normal(0, math.sqrt(sigma2_error), (patients, len(t)))
    base = 40 + u0[:, None] + (mean_slope + u1)[:, None] * t + e
    ys = np.stack([base, base + delta * t])  # (copies, patients, visits)
    sums = {
        "n": np.full(ys.shape[:2], float(len(t))),
        "st": np.full(ys.shape[:2], t.sum()),
        "stt": np.full(ys.shape[:2], (t * t).sum()),
        "sy": ys.sum(-1),
        "sty": (ys * t).sum(-1),
        "syy": (ys * ys).sum(-1),
    }
    ep = Endpoint("slope", "slope", +1, "units/month", lambda tables: None, doc="synthetic")
    design = TrialDesign("placebo", ("drug",), float(t[-1]), float(t[1] - t[0]))
    data = TrialData(
        design, TrialOptions(), float(t[-1]), t, np.arange(patients), ("placebo", "drug")
    )
    data.summaries["slope"] = Summary(ep, sums, sums)
    return data


# ---------------------------------------------------------------------------------------------
# Outputs: power.parquet, sample_size.csv, power.html


def _figure_png(power: pl.DataFrame, alpha: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trt = power.filter(pl.col("comparison") == "treatment")
    fig, ax = plt.subplots(figsize=(8.5, 5.2), dpi=110)
    cmap = plt.get_cmap("tab10")
    for i, ((endpoint, arm), g) in enumerate(
        trt.sort("n_per_arm").group_by(["endpoint", "arm"], maintain_order=True)
    ):
        label = endpoint if trt["arm"].n_unique() == 1 else f"{endpoint} ({arm})"
        c, ls = cmap(i % 10), ("-", "--", ":")[(i // 10) % 3]
        ax.plot(g["n_per_arm"], g["power"], marker="o", ls=ls, color=c, label=label, lw=1.6, ms=4)
        ax.fill_between(g["n_per_arm"], g["ci_low"], g["ci_high"], color=c, alpha=0.15, lw=0)
    for level, style in ((0.8, "--"), (0.9, ":")):
        ax.axhline(level, color="0.4", ls=style, lw=0.8)
    ax.axhline(alpha, color="0.6", ls="-", lw=0.6)
    ax.set_xscale("log")
    ax.minorticks_off()
    ns = sorted(set(trt["n_per_arm"].to_list()))
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("patients per arm")
    ax.set_ylabel("power")
    ax.set_title("Power by simulated trial (bands: 95% Monte Carlo intervals)")
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "&ndash;"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _html_table(df: pl.DataFrame, columns: Sequence[str]) -> str:
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r[c])}</td>" for c in columns) + "</tr>"
        for r in df.iter_rows(named=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(
    power: pl.DataFrame, sizes: pl.DataFrame, data: TrialData, run: str, alpha: float,
    warning: str = "",
) -> str:
    """The HTML page: the power curves as an embedded PNG and the tables (``warning``, e.g.
    that the run is incomplete, heads the page)."""
    o = data.options
    opts = (
        f"T = {data.trial_months:g} months, visits every {o.visit_interval:g} months, extra "
        f"dropout {o.dropout_per_month:g}/month, enrichment: {o.enrich or 'none'}; pool "
        f"{len(data.ids)} enrolled patients"
    )
    doc = pl.DataFrame(
        {"endpoint": list(data.summaries),
         "definition": [s.endpoint.doc for s in data.summaries.values()]}
    )
    summary = sizes.join(doc, on="endpoint", how="left")
    cols = ["endpoint", "arm", "n80", "n80_low", "n80_high", "n90", "n90_low", "n90_high",
            "type_I_error", "true_effect", "unit", "definition"]
    pcols = ["endpoint", "comparison", "arm", "n_per_arm", "replicates", "rejections", "power",
             "ci_low", "ci_high", "mean_estimate", "true_effect", "unit"]
    png = _figure_png(power, alpha)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Power: {run}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:13px;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}}
th{{background:#f3f3f3}} td:first-child{{text-align:left}}</style></head><body>
<h1>Power by simulated trial</h1>
{f'<p style="color:#8a1c1c"><b>Warning: {html.escape(warning)}.</b></p>' if warning else ""}
<p>Run <code>{run}</code>. {opts}. Alpha {alpha:g} ({power['sided'][0]}-sided),
{power['replicates'][0]} replicates per point.</p>
<img alt="power versus patients per arm" src="data:image/png;base64,{png}">
<h2>Sample size</h2>
<p>Patients per arm for 80% and 90% power, interpolated on the simulated curve (probit of power
against the square root of n); intervals from the curves of the power's 95% limits. Type I
error: rejections in null trials (placebo against placebo) over all sizes.</p>
{_html_table(summary, cols)}
<h2>All simulated points</h2>
{_html_table(power.sort("endpoint", "comparison", "n_per_arm"), pcols)}
</body></html>
"""


def write_outputs(
    power: pl.DataFrame, data: TrialData, out: str | Path, run: str, alpha: float,
    warning: str = "",
) -> dict[str, Path]:
    """Write ``power.parquet``, ``sample_size.csv`` and ``power.html`` into ``out``; a
    ``warning`` (an incomplete run) heads the page and fills a ``warning`` column of both
    tables."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = sample_size(power)
    if warning:
        power, sizes = (df.with_columns(warning=pl.lit(warning)) for df in (power, sizes))
    paths = {
        "power": out / "power.parquet",
        "sample_size": out / "sample_size.csv",
        "html": out / "power.html",
    }
    power.write_parquet(paths["power"])
    sizes.write_csv(paths["sample_size"])
    paths["html"].write_text(render_html(power, sizes, data, run, alpha, warning))
    return paths


def power_command(
    run: str | Path,
    out: str | Path,
    n_per_arm: Sequence[int],
    replicates: int = 1000,
    alpha: float = 0.05,
    sided: int = 2,
    seed: int = 0,
    endpoints: Sequence[str] | str | None = None,
    options: TrialOptions | None = None,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    allow_incomplete: bool = False,
) -> tuple[pl.DataFrame, dict[str, Path]]:
    """What ``progression power`` does: load, check, simulate, write.

    ``allow_incomplete`` simulates trials from the complete chunks of an unfinished run, and
    every output says so.

    Raises:
        PowerError: any request error, as one line.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PowerError(f"{out} exists and is not a folder")
    if (out / "power.parquet").exists() and not overwrite:
        raise PowerError(f"{out} already holds power.parquet; use --overwrite or another --out")
    # Cheap checks before the data are read.
    if not (0 < alpha < 1):
        raise PowerError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    if replicates < 10:
        raise PowerError(f"replicates must be an integer of at least 10, got {replicates!r}")
    t0 = time.perf_counter()
    try:
        resolve(endpoints)
        design = trial_design(run)
        status = run_status(run)
        tables = open_run(run, allow_incomplete=allow_incomplete, status=status)
        warning = "" if status.complete else status.describe()
        if not (options and options.enrich) and n_per_arm:
            pool = (
                tables["patients"]
                .filter(pl.col("enrolled"), pl.col("arm") == design.placebo)
                .select(pl.len())
                .collect()
                .item()
            )
            if max(n_per_arm) > pool // 2:
                raise PowerError(_too_many(max(n_per_arm), pool, False))
        data = load_trial(run, endpoints, options, tables=tables)
    except EndpointError as e:
        raise PowerError(str(e)) from None
    except RunReadError as e:
        hint = "" if allow_incomplete or "incomplete" not in str(e) else " (or --allow-incomplete)"
        raise PowerError(f"{e}{hint}") from None
    if len(data.ids) < 4:
        who = "meeting the enrichment" if data.options.enrich else "enrolled"
        raise PowerError(f"{run}: only {len(data.ids)} patients {who}; a trial needs more")
    t1 = time.perf_counter()
    power = simulate_power(
        data, n_per_arm, replicates, alpha, sided, seed, progress=progress
    )
    t2 = time.perf_counter()
    paths = write_outputs(power, data, out, str(run), alpha, warning)
    if log:
        log(
            f"{len(data.summaries)} endpoints x {len(n_per_arm)} sizes x {replicates} replicates "
            f"from {len(data.ids)} enrolled patients: load {t1 - t0:.1f} s, simulate "
            f"{t2 - t1:.1f} s -> {out}"
        )
    return power, paths


def _parse(text: str | None, name: str, cast, default=None):
    if text is None:
        return default
    try:
        value = cast(str(text).strip())
    except ValueError:
        what = "an integer" if cast is int else "a number"
        raise PowerError(f"{name}: expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise PowerError(f"{name}: expected a finite number, got {text!r}")
    return value


def parse_sizes(text: str) -> list[int]:
    """``"50,100,200"`` -> ``[50, 100, 200]`` (sorted, unique); one-line errors."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    if not parts:
        raise PowerError(f"--n-per-arm: expected sizes like 50,100,200, got {text!r}")
    sizes = []
    for p in parts:
        try:
            n = int(p)
        except ValueError:
            raise PowerError(f"--n-per-arm: {p!r} is not a whole number of patients") from None
        if n < 2:
            raise PowerError(f"--n-per-arm: {n} is too small (at least 2 patients per arm)")
        sizes.append(n)
    return sorted(set(sizes))


def power_cli(args, log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """``progression power`` from its (string) arguments: parse, check, simulate, write.

    Raises:
        PowerError: one line for the user (exit code 2).
    """
    alpha = _parse(args.alpha, "--alpha", float)
    if not 0 < alpha < 1:
        raise PowerError(f"--alpha: must lie strictly between 0 and 1, got {args.alpha!r}")
    replicates = _parse(args.replicates, "--replicates", int)
    if replicates < 10:
        raise PowerError(f"--replicates: at least 10 replicate trials, got {args.replicates!r}")
    sided = _parse(args.sided, "--sided", int)
    if sided not in (1, 2):
        raise PowerError(f"--sided: 1 or 2, got {args.sided!r}")
    seed = _parse(args.seed, "--seed", int, 0)
    if seed < 0:
        raise PowerError(f"--seed: an integer >= 0, got {args.seed!r}")
    dropout = _parse(args.dropout, "--dropout", float, 0.0)
    if dropout < 0:
        raise PowerError(f"--dropout: extra dropout per month must be >= 0, got {args.dropout!r}")
    options = TrialOptions(
        trial_months=_parse(args.trial_months, "--trial-months", float),
        visit_interval=_parse(args.visit_interval, "--visit-interval", float, 1.0),
        dropout_per_month=dropout,
        enrich=args.enrich,
        seed=seed,
    )
    _, paths = power_command(
        args.run,
        args.out,
        parse_sizes(args.n_per_arm),
        replicates=replicates,
        alpha=alpha,
        sided=sided,
        seed=seed,
        endpoints=args.endpoints,
        options=options,
        overwrite=args.overwrite,
        progress=sys.stderr.isatty(),
        log=log,
        allow_incomplete=getattr(args, "allow_incomplete", False),
    )
    return paths


__all__ = [
    "ENDPOINTS",
    "PowerError",
    "analyse",
    "closed_form_n",
    "draw_indices",
    "power_command",
    "random_slope_trial",
    "sample_size",
    "simulate_power",
    "slope_test",
    "survival_test",
    "rank_test",
    "change_test",
    "true_effect",
    "variance_components",
]
