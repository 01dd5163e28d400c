"""Power by simulation: replicate randomised trials drawn from a trial run, every endpoint analysed
the way trialists analyse it, with type I error, Monte Carlo intervals and the true effect.

A replicate trial draws ``2 n`` distinct enrolled patients and splits them at random: the first
``n`` are seen in the treatment arm, the other ``n`` in placebo (each patient's other copy is
never seen, as in a real trial). A *null* replicate sees all ``2 n`` in placebo. Every endpoint is
analysed on the same patients in a replicate, as in one trial. Per-patient summaries are computed
once (:func:`analysis.endpoints.load_trial`); a replicate is a row of indices, and a batch of
replicates is analysed at once with whole-array numpy operations (:mod:`analysis.trial_tests`
says how each endpoint kind is analysed and what its true effect is).

:func:`simulate_power` gives the power curves, :func:`analysis.sample_size.sample_size` reads
the sample sizes off them, :func:`closed_form_n` is the closed form they are checked against, and
:func:`power_command` is what ``progression power`` does (its outputs:
:mod:`analysis.power_report`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import NormalDist

import numpy as np
import polars as pl
from scipy import stats

from analysis.endpoints import (
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
from analysis.io import ENGINE, RunReadError, open_run, run_status
from analysis.power import n_per_arm_random_slope
from analysis.power_report import write_outputs
from analysis.reml import variance_components
from analysis.trial_tests import analyse, true_effect

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
    progress: Callable[[int, int], None] | None = None,
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
        progress: called as ``progress(done, total)`` after each sample size of each comparison,
            counting replicate trials (e.g. to draw a progress bar; nothing is drawn here).

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
    total, done = len(jobs) * len(n_per_arm) * replicates, 0
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
            done += replicates
            if progress is not None:
                progress(done, total)
    return pl.DataFrame(rows, schema_overrides={"n_per_arm": pl.Int64, "sided": pl.Int8})


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
# The command


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
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    allow_incomplete: bool = False,
) -> tuple[pl.DataFrame, dict[str, Path]]:
    """What ``progression power`` does: load, check, simulate, write.

    ``allow_incomplete`` simulates trials from the complete chunks of an unfinished run, and
    every output says so. ``progress`` is passed to :func:`simulate_power`; ``log`` receives one
    line of timings at the end.

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
                .collect(engine=ENGINE)
                .item()
            )
            if max(n_per_arm) > pool // 2:
                raise PowerError(_too_many(max(n_per_arm), pool, False))
        data = load_trial(run, endpoints, options, tables=tables)
    except EndpointError as e:
        raise PowerError(str(e)) from None
    except RunReadError as e:
        raise PowerError(str(e)) from None
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


__all__ = [
    "PowerError",
    "check_request",
    "clopper_pearson",
    "closed_form_n",
    "draw_indices",
    "power_command",
    "random_slope_trial",
    "simulate_power",
]
