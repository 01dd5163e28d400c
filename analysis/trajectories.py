"""Test trajectories: median and interquartile range of every test over months since onset.

Muscle tests (``muscles`` table) are summarised by latent phenotype and muscle, both sides
pooled; patient-level tests (``visits`` table) by phenotype alone (``muscle`` is null). Visits
are binned by months since symptom onset, rounded to the nearest multiple of ``bin_months``
(a bin labelled 12 with 3-month bins holds visits from 10.5 to 13.5 months after onset).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from analysis.io import (
    ENGINE,
    Run,
    aggregate,
    frames,
    group_columns,
    patient_batches,
    patient_columns,
    patient_keys,
    patients,
)
from analysis.least_squares import slopes_by
from analysis.quantiles import median_quartiles, pack, patient_groups, quartiles, unpack

#: Muscle-level tests and their units.
MUSCLE_TESTS = {
    "cmap_mv": "CMAP amplitude (mV)",
    "mune": "MUNE (units)",
    "munix": "MUNIX",
    "cmct_ms": "CMCT (ms)",
    "fasciculations_per_min": "fasciculations (per min)",
    "fibrillation_grade": "fibrillation grade (0-4)",
    "mrc_grade": "MRC grade (0-5)",
}
#: Patient-level tests (one value per visit) and their units.
VISIT_TESTS = {
    "alsfrs_r": "ALSFRS-R (0-48)",
    "svc_percent": "SVC (% predicted)",
}
#: Every test :func:`trajectories` summarises by default, with its label.
TESTS = {**MUSCLE_TESTS, **VISIT_TESTS}
#: Months of follow-up from the first visit over which the published ALSFRS-R and SVC slopes
#: are fitted (:func:`patient_slopes`).
SLOPE_WINDOW_MONTHS = 12.0
#: Least visits in that window for a patient's slope.
SLOPE_MIN_VISITS = 3


def trajectory_quartiles(
    run: Run,
    tests: Sequence[str] | None = None,
    by: str | Sequence[str] | None = "phenotype",
    bin_months: float = 3.0,
    muscles: Sequence[str] | None = None,
    min_n: int = 1,
) -> pl.DataFrame:
    """Median and quartiles of each test by group, muscle and months since symptom onset.

    Args:
        run: the dict from :func:`analysis.open_run`, or a run folder.
        tests: columns of the ``muscles`` or ``visits`` table (default: :data:`TESTS`).
        by: patient columns to group by (default: latent phenotype).
        bin_months: width of the months-since-onset bins.
        muscles: restrict muscle tests to these muscles (default: all; fewer is faster).
        min_n: drop bins with fewer observations.

    Returns:
        Long table: the ``by`` columns, ``test``, ``muscle`` (null for visit-level tests),
        ``months_since_onset`` (bin centre), ``n`` (observations), ``median``, ``q25``,
        ``q75``. Null test values (e.g. CMCT where no MEP) are not counted.
    """
    tests = list(TESTS if tests is None else tests)
    by = group_columns(by)
    t = frames(run)
    mus_cols = set(t["muscles"].collect_schema().names())
    vis_cols = set(t["visits"].collect_schema().names())
    unknown = [x for x in tests if x not in mus_cols and x not in vis_cols]
    if unknown:
        raise ValueError(f"unknown test column(s): {', '.join(unknown)}")
    tagged, groups = patient_groups(run, by)
    tagged = tagged.filter(pl.col("symptom_onset_month").is_not_null())
    keys = patient_keys(t)
    since = pl.col("month") - pl.col("symptom_onset_month")
    bin_ = (since / bin_months).round(0)
    parts = []
    m_tests = [x for x in tests if x in mus_cols]
    v_tests = [x for x in tests if x not in mus_cols]
    if m_tests:
        lf = t["muscles"].select(*keys, "month", "muscle", *m_tests)
        if muscles is not None:
            lf = lf.filter(pl.col("muscle").is_in(list(muscles)))
        lf = lf.join(tagged, on=keys, how="inner").select(
            pack(pl.col("_g"), pl.col("muscle").to_physical(), bin_), "muscle", *m_tests
        )
        parts.append(
            quartiles(lf, m_tests, keep=["muscle"]).with_columns(pl.col("muscle").cast(pl.String))
        )
    if v_tests:
        lf = t["visits"].select(*keys, "month", *v_tests)
        lf = lf.join(tagged, on=keys, how="inner").select(
            pack(pl.col("_g"), None, bin_), *v_tests
        )
        parts.append(
            quartiles(lf, v_tests).with_columns(pl.lit(None, pl.String).alias("muscle"))
        )
    order = {x: i for i, x in enumerate(tests)}
    cols = ["_k", "test", "muscle", "n", "median", "q25", "q75"]
    return (
        pl.concat([p.select(cols) for p in parts])
        .filter(pl.col("n") >= min_n)
        .with_columns(unpack())
        .join(groups.lazy(), on="_g", how="left")
        .select(
            *by, "test", "muscle",
            (pl.col("_bin") * bin_months).cast(pl.Float64).alias("months_since_onset"),
            "n", "median", "q25", "q75",
        )
        .sort(pl.col("test").replace_strict(order), *by, "muscle", "months_since_onset",
              nulls_last=True)
        .collect(engine=ENGINE)
    )


def patient_slopes(
    run: Run,
    test: str,
    window_months: float | None = SLOPE_WINDOW_MONTHS,
    min_visits: int = SLOPE_MIN_VISITS,
    by: str | Sequence[str] | None = None,
) -> pl.LazyFrame:
    """Each symptomatic patient's least-squares slope of a visit-level test (lazy).

    The default is the slope as the published figures define it: over the visits in the first
    :data:`SLOPE_WINDOW_MONTHS` months of follow-up from the patient's first visit, at least
    :data:`SLOPE_MIN_VISITS` of them with the test measured (PRO-ACT and EMPOWER pool trials
    of 6-18 months). The calibration targets and the sweep outcomes both read this slope;
    ``window_months=None`` fits all visits.

    Returns:
        A LazyFrame: the patient's keys (``patient_id``, and ``arm`` or ``point`` where the run
        has them), the ``by`` columns, ``points`` (visits fitted), ``slope``
        (units of the test per month) and ``first`` (the value at the first visit fitted).
    """
    ids = patient_columns(run, group_columns(by))
    keys = patient_keys(frames(run))
    pts = patients(run, [*ids, "symptom_onset_month", "first_visit_month"]).filter(
        pl.col("symptom_onset_month").is_not_null() & pl.col("first_visit_month").is_not_null()
    )
    vis = frames(run)["visits"].select(*keys, "month", test).join(pts, on=keys, how="inner")
    if window_months is not None:
        vis = vis.filter(pl.col("month") - pl.col("first_visit_month") <= window_months + 1e-9)
    return slopes_by(vis, test, ids, min_points=min_visits)


def slopes(
    run: Run,
    tests: Sequence[str] = ("alsfrs_r", "svc_percent"),
    by: str | Sequence[str] | None = "phenotype",
    min_visits: int = 2,
    window_months: float | None = None,
) -> pl.DataFrame:
    """Per-patient least-squares slopes of visit-level tests (:func:`patient_slopes`),
    summarised by group.

    By default each patient's slope is fitted over all their visits (at least ``min_visits``
    with the test measured), in units per month; the mean slope is what trials and registries
    report (e.g. ALSFRS-R about -1 point per month in ALS). ``window_months=SLOPE_WINDOW_MONTHS,
    min_visits=SLOPE_MIN_VISITS`` gives the published definition that the calibration and
    sweep outcomes use.

    Returns:
        The ``by`` columns, ``test``, ``patients`` (with a slope), ``mean``, ``median``,
        ``q25``, ``q75`` (units per month).
    """
    by = group_columns(by)
    parts = []
    for t in tests:
        per = pl.concat([  # a batch of patients at a time: one row per patient comes back
            patient_slopes(batch, t, window_months, min_visits, by).collect(engine=ENGINE)
            for batch in patient_batches(run)
        ]).lazy()
        s = pl.col("slope")
        agg = aggregate(
            per,
            by,
            pl.len().cast(pl.Int64).alias("patients"),
            s.mean().alias("mean"),
            *median_quartiles(s),
        )
        parts.append(agg.with_columns(pl.lit(t).alias("test")))
    order = {t: i for i, t in enumerate(tests)}
    return (
        pl.concat(parts)
        .select(*by, "test", "patients", "mean", "median", "q25", "q75")
        .sort(pl.col("test").replace_strict(order), *by)
        .collect(engine=ENGINE)
    )
