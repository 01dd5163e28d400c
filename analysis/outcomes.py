"""Outcome metrics of a run in one row: what a sweep compares across its points.

:func:`outcomes` condenses a run (or one point of a sweep, :func:`point_frames`) into the
figures that ``calibration/targets.toml`` and trials speak of; :func:`summarize_sweep` builds
``summary.parquet`` of ``progression sweep`` (one row per point) from them. Each metric comes
from the ready queries of this package where one exists (survival, slopes, time to diagnosis).
A metric that the run cannot estimate (e.g. median survival not reached in its follow-up) is
null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import polars as pl

from analysis.emergence import time_to_diagnosis
from analysis.io import (
    ENGINE,
    Run,
    RunStatus,
    frames,
    open_run,
    patient_keys,
    patients,
    run_status,
)
from analysis.least_squares import slopes_by
from analysis.survival import median_survival
from analysis.trajectories import SLOPE_MIN_VISITS, SLOPE_WINDOW_MONTHS, patient_slopes

#: Outcome columns of :func:`outcomes`, with their meaning and unit.
OUTCOMES: dict[str, str] = {
    "symptomatic": "patients with symptom onset in the run (the others are left out below)",
    "survival_median_months": "median survival from symptom onset, Kaplan-Meier (months)",
    "alsfrs_slope_per_month": (
        f"mean per-patient least-squares ALSFRS-R slope over the first {SLOPE_WINDOW_MONTHS:g} "
        f"months of follow-up, at least {SLOPE_MIN_VISITS} visits (points/month; the "
        "calibration target's slope)"
    ),
    "svc_slope_per_month": (
        "mean per-patient slow vital capacity slope, the same way (% predicted/month)"
    ),
    "diagnostic_delay_months": "median months from symptom onset to the first diagnosis",
    "als_criteria_delay_months": "median months from symptom onset to a visit diagnosing ALS",
    "share_ALS": "share of symptomatic patients whose last diagnosis is ALS",
    "share_PMA": "share of symptomatic patients whose last diagnosis is PMA",
    "share_PLS": "share of symptomatic patients whose last diagnosis is PLS",
    "share_none": "share of symptomatic patients without a diagnosis at their last visit",
    "mune_decline_percent_per_month": (
        "median over muscles of symptomatic patients of the MUNE slope over its first value "
        "(% of the first MUNE lost per month; positive = decline)"
    ),
}


def _first(df: pl.DataFrame, column: str) -> float | None:
    if df.is_empty():
        return None
    value = df[column][0]
    return None if value is None else float(value)


def mune_decline(run: Run) -> float | None:
    """Median % of the first MUNE lost per month, over (patient, muscle, side) series.

    Each series with at least two visits and a first MUNE above 0 gets its least-squares slope
    over months divided by its first value (as MUNE and MUNIX declines are reported, e.g.
    Neuwirth 2015: per muscle, % of baseline per month).
    """
    t = frames(run)
    keys = patient_keys(t)
    sym = patients(run, [*keys, "symptom_onset_month"]).filter(
        pl.col("symptom_onset_month").is_not_null()
    ).select(keys)
    series = (
        t["muscles"]
        .select(*keys, "month", pl.col("muscle").cast(pl.String),
                pl.col("side").cast(pl.String), "mune")
        .join(sym, on=keys, how="semi")
    )
    per = (
        slopes_by(series, "mune", [*keys, "muscle", "side"], min_points=2)
        .filter(pl.col("first") > 0)
        .select((-100.0 * pl.col("slope") / pl.col("first")).median().alias("d"))
        .collect(engine=ENGINE)
    )
    return _first(per, "d")


def outcomes(run: Run) -> dict[str, float | None]:
    """The :data:`OUTCOMES` of a run (the dict from ``open_run``, :func:`point_frames`, or a
    folder), computed over all its arms together."""
    sym = (
        patients(run, ["symptom_onset_month", "final_diagnosis"])
        .filter(pl.col("symptom_onset_month").is_not_null())
        .collect(engine=ENGINE)
    )
    n = sym.height
    out: dict[str, float | None] = {"symptomatic": float(n)}
    out["survival_median_months"] = _first(median_survival(run, by=None), "median")
    for test, name in (("alsfrs_r", "alsfrs_slope_per_month"),
                       ("svc_percent", "svc_slope_per_month")):
        mean = patient_slopes(run, test).select(pl.col("slope").mean())
        out[name] = _first(mean.collect(engine=ENGINE), "slope")
    dx = time_to_diagnosis(run, by=None)
    out["diagnostic_delay_months"] = _first(dx.filter(pl.col("diagnosis") == "any"), "median")
    out["als_criteria_delay_months"] = _first(dx.filter(pl.col("diagnosis") == "ALS"), "median")
    final = sym["final_diagnosis"].fill_null("none")
    for cat in ("ALS", "PMA", "PLS", "none"):
        out[f"share_{cat}"] = float((final == cat).sum()) / n if n else None
    out["mune_decline_percent_per_month"] = mune_decline(run)
    return out


def point_frames(
    sweep: str | Path, point: int, status: RunStatus | None = None
) -> dict[str, pl.LazyFrame]:
    """Lazy tables of one point of a (complete) sweep folder, as :func:`analysis.open_run`
    gives them for a run; ``status`` is the folder's :func:`analysis.io.run_status` if known."""
    return open_run(sweep, point=point, status=status)


def open_sweep(sweep: str | Path) -> dict[str, pl.LazyFrame]:
    """Lazy tables of a whole (complete) sweep folder with a ``point`` column (join
    ``points.parquet`` on it for the parameter values)."""
    return open_run(sweep)


#: Extra metrics of a point: its lazy tables -> {column: value} (e.g. calibration estimators).
Metrics = Callable[[Mapping[str, pl.LazyFrame]], Mapping[str, float | None]]


def summarize_sweep(
    sweep: str | Path, points: Sequence[int], metrics: Metrics | None = None
) -> pl.DataFrame:
    """One row per point: ``point``, the :data:`OUTCOMES` and any ``metrics`` columns
    (``summary.parquet``)."""
    rows = []
    status = run_status(sweep)
    for k in points:
        run = point_frames(sweep, k, status)
        rows.append({"point": k, **outcomes(run), **(dict(metrics(run)) if metrics else {})})
    extra = [c for c in (rows[0] if rows else {}) if c != "point" and c not in OUTCOMES]
    schema = {"point": pl.Int64, **{c: pl.Float64 for c in (*OUTCOMES, *extra)}}
    return pl.DataFrame(rows, schema=schema).with_columns(pl.col("symptomatic").cast(pl.Int64))
