"""Survival from symptom onset: Kaplan-Meier estimates, medians with confidence intervals.

Death is any cause (respiratory failure or other causes, ``patients.death_cause``); patients
alive at the end of the run are censored at ``end_month``. Patients never symptomatic in the
run have no origin and are left out.

The estimator is implemented here (a few polars expressions, so it runs lazily on any number of
patients) rather than taken from a survival library: Kaplan-Meier product-limit survival,
Greenwood's variance, pointwise confidence intervals on the log-log scale (Kalbfleisch and
Prentice; the default of lifelines, SAS and ``scipy.stats.ecdf``) or the log scale (the default
of R's ``survfit``), and the median's confidence interval from the pointwise band (Brookmeyer
and Crowley 1982, as R and lifelines compute it). ``tests/test_analysis.py`` checks it against
the textbook 6-MP leukaemia example (Freireich 1963; Kleinbaum and Klein, Survival Analysis,
table 2.1) and against ``scipy.stats.ecdf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import polars as pl

from analysis.io import ENGINE, Run, group_columns, patients

#: Months since onset at which :func:`survival_at` reports survival by default.
LANDMARKS = (12, 24, 36, 60)


def survival_times(run: Run, by: str | Sequence[str] | None = "phenotype") -> pl.LazyFrame:
    """Per symptomatic patient: ``months`` from symptom onset to death or censoring, ``died``.

    Returns:
        A LazyFrame: ``patient_id``, the ``by`` columns, ``months``, ``died``.
    """
    by = group_columns(by)
    onset = pl.col("symptom_onset_month")
    return (
        patients(run, [*by, "symptom_onset_month", "end_month", "death_month"])
        .filter(onset.is_not_null())
        .select(
            "patient_id",
            *by,
            (pl.col("end_month") - onset).clip(lower_bound=0.0).alias("months"),
            pl.col("death_month").is_not_null().alias("died"),
        )
    )


def kaplan_meier_estimate(
    data: pl.DataFrame | pl.LazyFrame,
    time: str = "months",
    event: str = "died",
    by: str | Sequence[str] | None = None,
    conf_level: float = 0.95,
    conf_type: str = "log-log",
) -> pl.DataFrame:
    """Kaplan-Meier survival of any frame with a time and an event column.

    Args:
        data: one row per subject.
        time: time to event or censoring.
        event: true for an event, false for censoring (censored at ``time``).
        by: columns to estimate separately for.
        conf_level: confidence level of the pointwise interval.
        conf_type: ``"log-log"`` or ``"log"`` (see the module docstring).

    Returns:
        One row per group and distinct time: the ``by`` columns, ``time``, ``at_risk`` (just
        before it), ``events``, ``censored``, ``survival`` (just after it), ``se`` (Greenwood
        standard error of the survival), ``lower`` and ``upper``.
    """
    if conf_type not in ("log-log", "log"):
        raise ValueError(f"conf_type must be 'log-log' or 'log', got {conf_type!r}")
    by = group_columns(by)
    z = NormalDist().inv_cdf(0.5 + conf_level / 2)
    lf = data.lazy().select(*by, pl.col(time).cast(pl.Float64).alias("time"),
                            pl.col(event).cast(pl.Boolean).alias("_e"))
    over = by or None

    def w(e: pl.Expr) -> pl.Expr:
        return e.over(over, order_by="time") if over else e

    steps = (
        lf.group_by([*by, "time"])
        .agg(pl.len().alias("_n"), pl.col("_e").sum().alias("events"))
        .sort([*by, "time"])
        .with_columns(
            (pl.col("_n") - pl.col("events")).alias("censored"),
            w(pl.col("_n").sum() - pl.col("_n").cum_sum() + pl.col("_n")).alias("at_risk"),
        )
        .with_columns(
            w((1.0 - pl.col("events") / pl.col("at_risk")).cum_prod()).alias("survival"),
            # Greenwood: sum of d / (n (n - d)); infinite once survival reaches 0.
            w(
                (
                    pl.col("events")
                    / (pl.col("at_risk") * (pl.col("at_risk") - pl.col("events")))
                ).cum_sum()
            ).alias("_g"),
        )
    )
    s, g = pl.col("survival"), pl.col("_g")
    if conf_type == "log":
        lower = s * (-z * g.sqrt()).exp()
        upper = (s * (z * g.sqrt()).exp()).clip(upper_bound=1.0)
    else:
        # log(-log S) +- z sqrt(g) / |log S|, mapped back: S ** exp(+-z sqrt(g) / log S).
        k = z * g.sqrt() / s.log()
        lower = s.pow((-k).exp())
        upper = s.pow(k.exp())
    surviving = (s > 0) & (s < 1)
    return (
        steps.with_columns(
            (s * g.sqrt()).alias("se"),
            pl.when(surviving).then(lower).when(s >= 1).then(1.0).otherwise(None).alias("lower"),
            pl.when(surviving).then(upper).when(s >= 1).then(1.0).otherwise(None).alias("upper"),
        )
        .with_columns(
            pl.when(pl.col("survival") <= 0).then(0.0).otherwise(pl.col("se")).alias("se")
        )
        .select(*by, "time", pl.col("at_risk").cast(pl.Int64), pl.col("events").cast(pl.Int64),
                pl.col("censored").cast(pl.Int64), "survival", "se", "lower", "upper")
        .collect(engine=ENGINE)
    )


def km_medians(km: pl.DataFrame, by: str | Sequence[str] | None = None) -> pl.DataFrame:
    """Median survival and its confidence interval from a :func:`kaplan_meier_estimate` table.

    The median is the first time survival falls to 0.5 or below (the midpoint to the next
    event time when it sits exactly at 0.5, as in R). The interval runs from the first time the
    lower band reaches 0.5 to the first time the upper band does; a bound never reached is null
    (not estimable from the follow-up).

    Returns:
        The ``by`` columns, ``patients``, ``deaths``, ``median``, ``lower``, ``upper``.
    """
    by = group_columns(by)
    rows = []
    parts = km.partition_by(by, maintain_order=True, as_dict=True) if by else {(): km}
    for key, g in parts.items():
        g = g.sort("time")
        t = g["time"].to_numpy()
        ev = g["events"].to_numpy()
        s = g["survival"].to_numpy()
        lo = g["lower"].fill_null(0.0).to_numpy()
        hi = g["upper"].fill_null(0.0).to_numpy()
        rows.append(
            (
                *key,
                int(g["at_risk"][0]) if len(g) else 0,
                int(ev.sum()),
                first_below_half(t, s, ev),
                first_below_half(t, lo, ev),
                first_below_half(t, hi, ev),
            )
        )
    schema = {**{c: km.schema[c] for c in by}, "patients": pl.Int64, "deaths": pl.Int64,
              "median": pl.Float64, "lower": pl.Float64, "upper": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def first_below_half(t: np.ndarray, s: np.ndarray, events: np.ndarray) -> float | None:
    """The median rule: the first time ``t`` where survival ``s`` is at or below 0.5 (None if
    never), the midpoint to the next event time when it sits exactly at 0.5."""
    hit = np.flatnonzero(s <= 0.5 + 1e-12)
    if not len(hit):
        return None
    i = hit[0]
    if abs(s[i] - 0.5) < 1e-12:
        later = np.flatnonzero((t > t[i]) & (events > 0))
        if len(later):
            return float((t[i] + t[later[0]]) / 2)
    return float(t[i])


def kaplan_meier(
    run: Run,
    by: str | Sequence[str] | None = "phenotype",
    conf_level: float = 0.95,
    conf_type: str = "log-log",
) -> pl.DataFrame:
    """Kaplan-Meier survival from symptom onset, by patient columns (default: phenotype).

    ``by="onset_site"`` groups bulbar, limb and trunk onset; ``"onset_region"`` the four
    regions. Columns as in :func:`kaplan_meier_estimate`, with ``time`` in months since onset.
    """
    by = group_columns(by)
    return kaplan_meier_estimate(
        survival_times(run, by), by=by, conf_level=conf_level, conf_type=conf_type
    )


def median_survival(
    run: Run,
    by: str | Sequence[str] | None = "phenotype",
    conf_level: float = 0.95,
    conf_type: str = "log-log",
) -> pl.DataFrame:
    """Median survival from symptom onset (months) with its confidence interval, by group.

    Returns:
        The ``by`` columns, ``patients``, ``deaths``, ``median``, ``lower``, ``upper``.
    """
    by = group_columns(by)
    return km_medians(kaplan_meier(run, by, conf_level, conf_type), by).sort(by or "patients")


def survival_at(
    run: Run,
    months: Sequence[float] = LANDMARKS,
    by: str | Sequence[str] | None = "phenotype",
    conf_level: float = 0.95,
    conf_type: str = "log-log",
) -> pl.DataFrame:
    """Kaplan-Meier survival at given months since onset, with its confidence interval.

    Null beyond the last follow-up time of a group (not estimable).

    Returns:
        The ``by`` columns, ``months``, ``at_risk`` (still followed then), ``survival``,
        ``lower``, ``upper``.
    """
    by = group_columns(by)
    km = kaplan_meier(run, by, conf_level, conf_type)
    grid = pl.DataFrame({"months": [float(m) for m in months]})
    if by:
        grid = km.select(by).unique().join(grid, how="cross")
    followed = (
        survival_times(run, by)
        .join(grid.lazy().rename({"months": "_m"}), on=by, how="inner")
        if by
        else survival_times(run, by).join(grid.lazy().rename({"months": "_m"}), how="cross")
    )
    followed = followed.group_by([*by, "_m"]).agg(
        (pl.col("months") >= pl.col("_m")).sum().cast(pl.Int64).alias("at_risk"),
        pl.col("months").max().alias("_last"),
    ).rename({"_m": "months"})
    est = (
        grid.sort([*by, "months"])
        .join_asof(
            km.sort([*by, "time"]).select(*by, "time", "survival", "lower", "upper"),
            left_on="months",
            right_on="time",
            by=by or None,
            strategy="backward",
            check_sortedness=False,
        )
        .with_columns(
            pl.col("survival").fill_null(1.0),
            pl.col("lower").fill_null(1.0),
            pl.col("upper").fill_null(1.0),
        )
        .drop("time")
    )
    beyond = pl.col("months") > pl.col("_last")
    return (
        est.join(followed.collect(engine=ENGINE), on=[*by, "months"], how="left")
        .with_columns(
            pl.when(beyond).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("survival", "lower", "upper")
        )
        .select(*by, "months", "at_risk", "survival", "lower", "upper")
        .sort([*by, "months"])
    )
