"""The random intercept and slope model, fitted exactly by REML from per-patient sums.

Patient i has n_i visits at times t_ij (design X_i = [1, t]), A_i = X_i'X_i, c_i = X_i'y_i and
s_i = y_i'y_i. In y_i = X_i beta_g + X_i u_i + e_i with u_i ~ N(0, D), e ~ N(0, sigma2 I), every
term of the (restricted) likelihood and its derivatives depends on the data only through
A_i, c_i, s_i, via P_i = sigma2 I + A_i D: X'V^-1 X = P^-1 A, X'V^-1 y = P^-1 c, V^-1 =
(I - X K X') / sigma2 with K = D P^-1 (push-through identity; no inverse of D or A is needed,
so one-visit patients and a singular D are fine). Patients sharing a visit pattern (the same
A) are pooled into a cell (:class:`Cells`) holding the count and the sums of c, c c' and s, so a
replicate's fit costs a few operations per cell, not per patient.

:func:`reml` estimates the variance components per replicate (Fisher scoring from moment
estimates), :func:`gls` the fixed effects given them; :func:`analysis.trial_tests.slope_test`
compares the groups' mean slopes with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.endpoints import Summary


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


def pattern_index(sums: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each patient's visit pattern (his ``n, sum t, sum t^2``) as an index into the table of
    the distinct patterns: ``(index shaped like sums["n"], table (patterns, 3))``."""
    key = np.stack([sums["n"].ravel(), sums["st"].ravel(), sums["stt"].ravel()], -1)
    table, index = np.unique(key, axis=0, return_inverse=True)
    return index.reshape(sums["n"].shape), table


def visit_patterns(s: Summary) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pattern_index` of every (copy, patient) as the trial sees it, cached on the
    summary."""
    if "patterns" not in s.cache:
        s.cache["patterns"] = pattern_index(s.obs)
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


def gls(cells: Cells, sigma2: np.ndarray, d: _M2):
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
    (bx, by), f, q, w = gls(cells, sigma2, d)
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


def variance_components(s: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """REML ``(sigma2, D)`` of one group of patients (arrays ``(patients,)`` of sums)."""
    one = {k: v[None] for k, v in s.items()}
    index, table = pattern_index(one)
    sigma2, d = reml(slope_cells([index], [one], table), iterations=30)
    return float(sigma2[0]), np.array([[d.a[0], d.b[0]], [d.c[0], d.d[0]]])


__all__ = [
    "Cells",
    "gls",
    "pattern_index",
    "reml",
    "slope_cells",
    "variance_components",
    "visit_patterns",
]
