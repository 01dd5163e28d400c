"""Phenotype emergence: when, and how reliably, patients are recognised as ALS, PMA or PLS.

The latent phenotype (``patients.phenotype``) is the truth; the clinical diagnosis at each visit
emerges from the findings, and the ``events`` table records every change of it
(``event == "diagnosis"``, category in ``detail``). All times here count in months since
symptom onset; patients never symptomatic in the run are left out.
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
from analysis.quantiles import median_quartiles

#: Diagnoses a visit can give (besides ``none``).
DIAGNOSES = ("PMA", "PLS", "ALS")
#: States of a patient at a month since onset, in the order the emergence table lists them:
#: not yet seen by a neurologist, seen but no diagnosis yet, diagnosed, dead.
STATES = ("unseen", "none", *DIAGNOSES, "dead")
#: Default months since onset for :func:`emergence` (every 3 months for 10 years).
MONTHS = tuple(range(0, 121, 3))


def diagnosis_times(run: Run, by: str | Sequence[str] | None = "phenotype") -> pl.DataFrame:
    """One row per symptomatic patient: when each diagnosis was first given.

    Args:
        run: the dict from :func:`analysis.open_run`, or a run folder.
        by: patient columns to carry along (``phenotype``, ``onset_region``, ``onset_site``,
            ``arm``, ...).

    Returns:
        ``patient_id`` (and ``arm`` or ``point`` where the run has them), the ``by`` columns,
        then in months since symptom onset:
        ``months_to_first_visit``, ``months_to_end`` (death or end of follow-up), ``died``,
        ``first_diagnosis`` (the first category given, null if none), ``months_to_diagnosis``
        (to the first), ``months_to_PMA``, ``months_to_PLS``, ``months_to_ALS`` (first visit
        with that diagnosis; null if never).
    """
    return _diagnosis_times(run, group_columns(by)).collect(engine=ENGINE)


def _diagnosis_times(run: Run, by: list[str]) -> pl.LazyFrame:
    t = frames(run)
    keys = patient_keys(t)
    dx = (
        t["events"]
        .select(*keys, "event", "month", "detail")
        .filter(pl.col("event") == "diagnosis")
        .with_columns(pl.col("detail").cast(pl.String))
        .filter(pl.col("detail").is_in(DIAGNOSES))
        .sort(*keys, "month")
        .group_by(keys)
        .agg(
            pl.col("detail").first().alias("first_diagnosis"),
            pl.col("month").first().alias("_dx"),
            *[
                pl.col("month").filter(pl.col("detail") == d).min().alias(f"_{d}")
                for d in DIAGNOSES
            ],
        )
    )
    cols = ["symptom_onset_month", "first_visit_month", "death_month", "end_month"]
    onset = pl.col("symptom_onset_month")
    ids = patient_columns(run, by)
    return (
        patients(run, [*ids, *cols])
        .filter(onset.is_not_null())
        .join(dx, on=keys, how="left")
        .select(
            *ids,
            (pl.col("first_visit_month") - onset).alias("months_to_first_visit"),
            (pl.col("end_month") - onset).alias("months_to_end"),
            pl.col("death_month").is_not_null().alias("died"),
            "first_diagnosis",
            (pl.col("_dx") - onset).alias("months_to_diagnosis"),
            *[(pl.col(f"_{d}") - onset).alias(f"months_to_{d}") for d in DIAGNOSES],
        )
    )


def _state_at(t: pl.Expr) -> pl.Expr:
    """Diagnosis state at month-since-onset ``t`` (expression over :func:`_diagnosis_times`).

    The diagnosis at ``t`` is the one given most recently: ALS once given stays (findings
    accumulate), otherwise the later of PMA and PLS.
    """
    als, pma, pls = (pl.col(f"months_to_{d}") for d in ("ALS", "PMA", "PLS"))
    pma_now = pma.is_not_null() & (pma <= t)
    pls_now = pls.is_not_null() & (pls <= t)
    return (
        pl.when(als.is_not_null() & (als <= t))
        .then(pl.lit("ALS"))
        .when(pma_now & (~pls_now | (pma >= pls)))
        .then(pl.lit("PMA"))
        .when(pls_now)
        .then(pl.lit("PLS"))
        .otherwise(pl.lit("none"))
    )


def _grid(months: Sequence[float]) -> pl.LazyFrame:
    return pl.LazyFrame({"months_since_onset": [float(m) for m in months]})


def phenotype_emergence(
    run: Run,
    months: Sequence[float] = MONTHS,
    by: str | Sequence[str] | None = "phenotype",
) -> pl.DataFrame:
    """Share of patients in each diagnostic state by months since symptom onset.

    At each month a patient is ``unseen`` (no visit yet), ``none`` (seen, no diagnosis yet),
    ``PMA``, ``PLS`` or ``ALS`` (the diagnosis given most recently) or ``dead``. Patients whose
    follow-up ended alive before that month (the run ended) are censored and left out, so the
    shares of the six states sum to one.

    Args:
        run: the dict from :func:`analysis.open_run`, or a run folder.
        months: months since symptom onset to evaluate.
        by: patient columns to group by; the default compares latent phenotypes.

    Returns:
        Long table: the ``by`` columns, ``months_since_onset``, ``state`` (one of
        :data:`STATES`), ``patients`` in that state, ``followed`` (patients not censored) and
        ``share`` (patients / followed; null when nobody is followed).
    """
    by = group_columns(by)
    t = pl.col("months_since_onset")
    seen = pl.col("months_to_first_visit").is_not_null() & (pl.col("months_to_first_visit") <= t)
    dead = pl.col("died") & (pl.col("months_to_end") <= t)
    state = (
        pl.when(dead)
        .then(pl.lit("dead"))
        .when(~seen)
        .then(pl.lit("unseen"))
        .otherwise(_state_at(t))
    )
    keys = [*by, "months_since_onset"]
    counts = [  # a batch of patients at a time: the counts add up
        _diagnosis_times(batch, by)
        .join(_grid(months), how="cross")
        .filter(pl.col("died") | (pl.col("months_to_end") >= t))
        .with_columns(state.alias("state"))
        .group_by(keys)
        .agg(pl.len().alias("followed"), *[(pl.col("state") == s).sum().alias(s) for s in STATES])
        .collect(engine=ENGINE)
        for batch in patient_batches(run)
    ]
    wide = pl.concat(counts).group_by(keys).agg(pl.col("followed", *STATES).sum()).lazy()
    full = _grid(months)
    if by:
        full = wide.select(by).unique().join(full, how="cross")
    return (
        full.join(wide, on=keys, how="left")
        .with_columns(pl.col("followed", *STATES).fill_null(0))
        .unpivot(index=[*keys, "followed"], on=list(STATES), variable_name="state",
                 value_name="patients")
        .with_columns(
            pl.col("patients").cast(pl.Int64),
            pl.col("followed").cast(pl.Int64),
            pl.when(pl.col("followed") > 0)
            .then(pl.col("patients") / pl.col("followed"))
            .alias("share"),
        )
        .select(*keys, "state", "patients", "followed", "share")
        .sort(*keys, pl.col("state").replace_strict({s: i for i, s in enumerate(STATES)}))
        .collect(engine=ENGINE)
    )


def confusion(
    run: Run, months: Sequence[float] = (12, 24, 36), by: str | Sequence[str] | None = None
) -> pl.DataFrame:
    """Latent phenotype against clinical diagnosis at chosen months since symptom onset.

    Counts the patients seen by a neurologist by that month (first visit at or before it); each
    is counted under the diagnosis last recorded at or before it (``none`` if none yet), so a
    patient who died keeps the diagnosis of the last visit.

    Args:
        run: the dict from :func:`analysis.open_run`, or a run folder.
        months: months since symptom onset.
        by: extra patient columns to split by (e.g. ``arm``).

    Returns:
        One row per month and latent phenotype: ``months_since_onset``, the ``by`` columns,
        ``phenotype``, ``seen`` (patients counted) and one count column per diagnosis
        (``none``, ``PMA``, ``PLS``, ``ALS``) summing to ``seen``.
    """
    by = [c for c in group_columns(by) if c != "phenotype"]
    keys = ["months_since_onset", *by, "phenotype"]
    t = pl.col("months_since_onset")
    cats = ("none", *DIAGNOSES)
    counts = [  # a batch of patients at a time: the counts add up
        _diagnosis_times(batch, [*by, "phenotype"])
        .join(_grid(months), how="cross")
        .filter(pl.col("months_to_first_visit") <= t)
        .with_columns(_state_at(t).alias("diagnosis"))
        .group_by(keys)
        .agg(
            pl.len().cast(pl.Int64).alias("seen"),
            *[(pl.col("diagnosis") == c).sum().cast(pl.Int64).alias(c) for c in cats],
        )
        .collect(engine=ENGINE)
        for batch in patient_batches(run)
    ]
    return pl.concat(counts).group_by(keys).agg(pl.col("seen", *cats).sum()).sort(keys)


def time_to_diagnosis(run: Run, by: str | Sequence[str] | None = "phenotype") -> pl.DataFrame:
    """Months from symptom onset to the first visit giving each diagnosis.

    Medians and quartiles are over the patients who received that diagnosis (``diagnosed``);
    patients who died or left follow-up first do not count, so compare ``share`` too.

    Returns:
        One row per group and ``diagnosis`` (``any`` = the first diagnosis of whatever
        category, then ``PMA``, ``PLS``, ``ALS``): ``patients`` (symptomatic), ``diagnosed``,
        ``share``, ``median``, ``q25``, ``q75`` (months since onset) and
        ``median_after_first_visit`` (months from the first visit).
    """
    by = group_columns(by)
    base = pl.concat([  # a batch of patients at a time: one row per patient comes back
        _diagnosis_times(batch, by).collect(engine=ENGINE) for batch in patient_batches(run)
    ]).lazy()
    parts = []
    for name, col in [("any", "months_to_diagnosis")] + [(d, f"months_to_{d}") for d in DIAGNOSES]:
        m = pl.col(col)
        aggs = [
            pl.len().cast(pl.Int64).alias("patients"),
            m.count().cast(pl.Int64).alias("diagnosed"),
            *median_quartiles(m),
            (m - pl.col("months_to_first_visit")).median().alias("median_after_first_visit"),
        ]
        g = aggregate(base, by, *aggs)
        parts.append(g.with_columns(pl.lit(name).alias("diagnosis")))
    out = pl.concat(parts).with_columns((pl.col("diagnosed") / pl.col("patients")).alias("share"))
    order = {n: i for i, n in enumerate(("any", *DIAGNOSES))}
    return (
        out.select(*by, "diagnosis", "patients", "diagnosed", "share", "median", "q25", "q75",
                   "median_after_first_visit")
        .sort(*by, pl.col("diagnosis").replace_strict(order))
        .collect(engine=ENGINE)
    )


def conversion_events(run: Run, by: str | Sequence[str] | None = "phenotype") -> pl.DataFrame:
    """Patients first diagnosed PMA or PLS who were later diagnosed ALS, one row each.

    Returns:
        ``patient_id`` (and ``arm`` or ``point`` where the run has them), the ``by`` columns,
        ``conversion`` (``PMA->ALS`` or ``PLS->ALS``),
        ``months_to_first`` (onset to the first diagnosis), ``months_to_ALS`` (onset to ALS) and
        ``months_between``.
    """
    return _conversions(run, group_columns(by)).collect(engine=ENGINE)


def _conversions(run: Run, by: list[str]) -> pl.LazyFrame:
    return (
        _diagnosis_times(run, by)
        .filter(
            pl.col("first_diagnosis").is_in(["PMA", "PLS"])
            & pl.col("months_to_ALS").is_not_null()
        )
        .select(
            *patient_columns(run, by),
            (pl.col("first_diagnosis") + "->ALS").alias("conversion"),
            pl.col("months_to_diagnosis").alias("months_to_first"),
            "months_to_ALS",
            (pl.col("months_to_ALS") - pl.col("months_to_diagnosis")).alias("months_between"),
        )
    )


def conversions(run: Run, by: str | Sequence[str] | None = "phenotype") -> pl.DataFrame:
    """How often, and how late, a first PMA or PLS diagnosis turns into ALS.

    Returns:
        One row per group and ``conversion`` (``PMA->ALS``, ``PLS->ALS``): ``first_diagnosed``
        (patients whose first diagnosis was PMA, resp. PLS), ``converted``, ``share``,
        ``median``/``q25``/``q75`` months between the two diagnoses and
        ``median_months_to_ALS`` (from symptom onset).
    """
    by = group_columns(by)
    base = _diagnosis_times(run, by)
    conv = _conversions(run, by)
    parts = []
    for first in ("PMA", "PLS"):
        name = f"{first}->ALS"
        firsts = base.filter(pl.col("first_diagnosis") == first)
        firsts = aggregate(firsts, by, pl.len().alias("first_diagnosed"))
        c = conv.filter(pl.col("conversion") == name)
        aggs = [
            pl.len().alias("converted"),
            *median_quartiles("months_between"),
            pl.col("months_to_ALS").median().alias("median_months_to_ALS"),
        ]
        c = aggregate(c, by, *aggs)
        j = firsts.join(c, on=by, how="left") if by else pl.concat([firsts, c], how="horizontal")
        parts.append(j.with_columns(pl.lit(name).alias("conversion")))
    return (
        pl.concat(parts)
        .with_columns(
            pl.col("first_diagnosed").cast(pl.Int64),
            pl.col("converted").fill_null(0).cast(pl.Int64),
        )
        .with_columns(
            pl.when(pl.col("first_diagnosed") > 0)
            .then(pl.col("converted") / pl.col("first_diagnosed"))
            .alias("share")
        )
        .select(*by, "conversion", "first_diagnosed", "converted", "share", "median", "q25",
                "q75", "median_months_to_ALS")
        .sort(*by, "conversion")
        .collect(engine=ENGINE)
    )
