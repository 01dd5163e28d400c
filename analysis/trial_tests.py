"""The analysis of one replicate trial per endpoint kind, and the true effect it estimates.

Each analysis takes per-patient summaries (arrays ``(replicates, patients)``, see
:class:`analysis.endpoints.Summary`) of the treated and the placebo arm of a batch of replicate
trials and returns an estimate and a statistic ``z`` on the standard normal scale, positive when
the treatment arm's value is higher:

- ``slope``: linear mixed model with random intercept and random slope and fixed effects
  treatment x time, fitted by REML exactly from per-patient sums (:mod:`analysis.reml`): Fisher
  scoring from moment estimates, then generalised least squares; Wald statistic referred to t
  on ``2n - 4`` degrees of freedom (between-patient), reported on the normal scale. It agrees
  with ``statsmodels`` MixedLM where that converges (tests). Two wrong analyses are here so that
  a test can show the type I error check catches them: without a random slope the
  between-patient variation in slope is taken for precision, and a true null is rejected far
  too often: ``slope_method="intercept"`` (random intercept only, the classic mistake) and
  ``"naive"`` (pooled OLS on all visits).
- ``change``: Welch t-test of the change from baseline at month T among patients seen at T.
- ``time``: log-rank test (ties: the hypergeometric variance), estimate the Cox hazard ratio
  (Breslow ties, Newton-Raphson).
- ``rank``: Wilcoxon-Mann-Whitney rank-sum test with the exact permutation variance of mid-ranks;
  estimate ``P(treated better) + P(tie)/2``.

The true effect (:func:`true_effect`) comes from each enrolled patient's two counterfactual
trajectories, observed in full (no dropout; death still ends them): slopes and changes: the mean
over patients of the treated copy minus the placebo copy; time: the Cox hazard ratio of all
treated copies against all placebo copies; rank: ``P(treated copy better than placebo copy)``
over all pairs. That is the quantity each analysis estimates, so ``mean_estimate -
true_effect`` is the trial's bias.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special, stats

from analysis.endpoints import SLOPE_FIELDS, Summary
from analysis.least_squares import line_from_sums
from analysis.reml import gls, pattern_index, reml, slope_cells, visit_patterns


def _take(arrays: dict[str, np.ndarray], copy: int, idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[copy][idx] for k, v in arrays.items()}


# ---------------------------------------------------------------------------------------------
# Slopes


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
        method: ``"lmm"`` (random intercept and slope by REML, :mod:`analysis.reml`); for
            showing what goes wrong without a random slope: ``"intercept"`` (random intercept
            only) or ``"naive"`` (pooled OLS over all visits, independent errors).
        patterns: ``([pattern_trt, pattern_pl], table)`` as from
            :func:`analysis.reml.visit_patterns`; computed here when not given.
    """
    if method == "naive":
        return _naive_slope_test(trt, pl_)
    if method not in ("lmm", "intercept"):
        raise ValueError(f"method must be 'lmm', 'intercept' or 'naive', got {method!r}")
    if patterns is None:
        both = {f: np.concatenate([trt[f], pl_[f]], -1) for f in ("n", "st", "stt")}
        index, table = pattern_index(both)
        patterns = [index[:, : trt["n"].shape[-1]], index[:, trt["n"].shape[-1] :]], table
    pattern, table = patterns
    cells = slope_cells(pattern, [trt, pl_], table)
    sigma2, d = reml(cells, random_slope=method == "lmm")
    (_, by), f, _, _ = gls(cells, sigma2, d)
    est = by[:, 0] - by[:, 1]
    seen = np.sum(np.where(table[:, 0] > 0, cells.count, 0.0), axis=(1, 2))
    return est, _t_to_z(est / np.sqrt(f.d[:, 0] + f.d[:, 1]), seen - 4)


def _t_to_z(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """A t statistic on ``df`` degrees of freedom as the normal quantile of the same tail."""
    df = np.maximum(np.nan_to_num(df, nan=1.0), 1.0)
    a = np.abs(np.nan_to_num(t))
    return np.sign(t) * -special.ndtri(special.stdtr(df, -a))  # lower tail: no rounding to 1


def _patient_slopes(sums: dict[str, np.ndarray]) -> np.ndarray:
    """Each patient's least-squares slope from his visit sums (nan with fewer than two visits)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        _, b = line_from_sums(*(sums[f] for f in ("n", "st", "stt", "sy", "sty")))
    return np.where(np.isfinite(b), b, np.nan)


def _naive_slope_test(trt, pl_):
    """Pooled OLS over all visits of each arm, the errors taken as independent (the wrong
    analysis that :func:`slope_test` offers as ``method="naive"``)."""
    slopes, spreads, rss, nobs = [], [], 0.0, 0.0
    for g in (trt, pl_):
        n, st, stt, sy, sty, syy = (np.sum(g[f], axis=-1) for f in SLOPE_FIELDS)
        a, b = line_from_sums(n, st, stt, sy, sty)
        rss = rss + np.maximum(syy - a * sy - b * sty, 0.0)
        nobs = nobs + n
        slopes.append(b)
        spreads.append(stt - st * st / n)  # sum (t - mean t)^2: var(b) = sigma2 / spread
    sigma2 = rss / np.maximum(nobs - 4, 1.0)
    est = slopes[0] - slopes[1]
    return est, est / np.sqrt(sigma2 * (1 / spreads[0] + 1 / spreads[1]))


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
        b1 = _patient_slopes({k: v[copy] for k, v in f.items()})
        b0 = _patient_slopes({k: v[0] for k, v in f.items()})
        both = np.isfinite(b1) & np.isfinite(b0)
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


__all__ = ["analyse", "change_test", "rank_test", "slope_test", "survival_test", "true_effect"]
