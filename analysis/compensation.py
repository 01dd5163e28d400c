"""The compensation curve: what CMAP, MUNE and strength show as the true unit count falls.

Collateral reinnervation hides motor unit loss: surviving units adopt orphaned fibres, so CMAP
and strength hold up until about half of the units are gone, while a motor unit number
estimate falls with the units themselves. Here each measure is expressed relative to a
baseline and summarised against the true fraction of units lost (``1 -
units_alive_fraction``, a truth column of the ``muscles`` table), in bins.

Baselines:

- ``"healthy"``: the run's healthy reference for that muscle, the median of the measure over
  all examinations of that muscle with every unit alive (:func:`healthy_reference`). Works for
  any cohort; individual healthy values vary (CMAP by about 20%), which widens the quartiles
  but not the medians.
- ``"first_visit"``: the same patient's same muscle (and side) at the first visit, as in a
  longitudinal study, keeping only muscles with at least ``intact`` of their units alive at
  that visit (all of them in cohorts examined from month 0).

Strength is ``strength_fraction`` (force over healthy force, truth: it includes UMN weakness)
with the ``"healthy"`` baseline, and relative to its first-visit value with ``"first_visit"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from analysis.io import ENGINE, Run, frames, group_columns, patient_keys
from analysis.quantiles import pack, patient_groups, quartiles, unpack

#: Measures of the compensation curve: column -> label.
MEASURES = {
    "cmap_mv": "CMAP",
    "mune": "MUNE",
    "munix": "MUNIX",
    "strength_fraction": "strength",
}
#: Examinations with at least this fraction of units alive count as healthy references.
HEALTHY_UNITS = 0.999


def healthy_reference(run: Run, measures: Sequence[str] = tuple(MEASURES)) -> pl.DataFrame:
    """Per muscle, the median of each measure over examinations with every unit alive.

    Returns:
        ``muscle``, ``n`` (examinations) and one column per measure.
    """
    return (
        _healthy(run, list(measures))
        .drop("_m")
        .with_columns(pl.col("muscle").cast(pl.String))
        .sort("muscle")
        .collect(engine=ENGINE)
    )


def _healthy(run: Run, measures: list[str]) -> pl.LazyFrame:
    """Per muscle code ``_m``: ``muscle``, ``n`` (healthy examinations) and the median of each
    measure (grouped medians in bounded memory: :func:`analysis.quantiles.quartiles`)."""
    healthy = (
        frames(run)["muscles"]
        .select(pl.col("muscle").to_physical().alias("_k"), "muscle", "units_alive_fraction",
                *measures)
        .filter(pl.col("units_alive_fraction") >= HEALTHY_UNITS)
    )
    counts = healthy.group_by("_k").agg(pl.col("muscle").first(),
                                        pl.len().cast(pl.Int64).alias("n"))
    medians = (
        quartiles(healthy, measures, name="measure")
        .select("_k", "measure", "median")
        .collect(engine=ENGINE)
        .pivot(on="measure", on_columns=measures, index="_k", values="median")
    )
    return counts.join(medians.lazy(), on="_k", how="left").rename({"_k": "_m"})


def relative_measures(
    run: Run,
    baseline: str = "healthy",
    measures: Sequence[str] = tuple(MEASURES),
    intact: float = 0.95,
) -> pl.LazyFrame:
    """Every examined muscle with its measures relative to ``baseline`` (lazy).

    Returns:
        A LazyFrame: ``patient_id`` (and ``arm`` or ``point`` where the run has them),
        ``month``, ``muscle`` and ``side`` (categorical, as in the
        ``muscles`` table), ``units_lost`` (true fraction of units lost) and one
        ``<measure>_rel`` column per measure.
    """
    measures = list(measures)
    keys = patient_keys(frames(run))
    lf = frames(run)["muscles"].select(
        *keys, "month", "muscle", "side", "units_alive_fraction", *measures
    )
    if baseline == "healthy":
        plain = [m for m in measures if m != "strength_fraction"]
        ref = _healthy(run, plain).select(
            "_m", *[pl.col(m).alias(f"{m}_ref") for m in plain]
        ).collect(engine=ENGINE)  # computed once, joined to every examination as it streams
        lf = lf.with_columns(pl.col("muscle").to_physical().alias("_m")).join(
            ref.lazy(), on="_m", how="inner"
        )
        if "strength_fraction" in measures:
            lf = lf.with_columns(pl.lit(1.0).alias("strength_fraction_ref"))
    elif baseline == "first_visit":
        key = [*keys, "muscle", "side"]
        first = (
            lf.sort("month")
            .group_by(key)
            .agg(
                pl.col("units_alive_fraction").first().alias("_alive0"),
                *[pl.col(m).first().alias(f"{m}_ref") for m in measures],
            )
            .filter(pl.col("_alive0") >= intact)
            .drop("_alive0")
        )
        lf = lf.join(first, on=key, how="inner")
    else:
        raise ValueError(f"baseline must be 'healthy' or 'first_visit', got {baseline!r}")
    return lf.select(
        *keys,
        "month",
        "muscle",
        "side",
        (1.0 - pl.col("units_alive_fraction")).alias("units_lost"),
        *[(pl.col(m) / pl.col(f"{m}_ref")).alias(f"{m}_rel") for m in measures],
    )


def compensation_curve(
    run: Run,
    baseline: str = "healthy",
    bins: int = 10,
    by: str | Sequence[str] | None = None,
    measures: Sequence[str] = tuple(MEASURES),
    intact: float = 0.95,
) -> pl.DataFrame:
    """Relative CMAP, MUNE, MUNIX and strength against the true fraction of units lost.

    Args:
        run: the dict from :func:`analysis.open_run`, or a run folder.
        baseline: ``"healthy"`` or ``"first_visit"`` (see the module docstring).
        bins: number of equal bins of the fraction of units lost, 0 to 1.
        by: ``muscle`` and/or patient columns (e.g. ``phenotype``); default: all pooled.
        measures: columns of the ``muscles`` table.
        intact: with ``"first_visit"``, the smallest fraction of units alive at that visit.

    Returns:
        Long table: the ``by`` columns, ``measure``, ``units_lost`` (bin centre), ``lo``,
        ``hi`` (bin edges), ``n``, ``median``, ``q25``, ``q75`` of the measure over its
        baseline.
    """
    by = group_columns(by)
    measures = list(measures)
    per_muscle = "muscle" in by
    pby = [c for c in by if c != "muscle"]
    rel = relative_measures(run, baseline, measures, intact)
    if pby:
        tagged, groups = patient_groups(run, pby)
        keys = patient_keys(frames(run))
        rel = rel.join(tagged.select(*keys, "_g"), on=keys, how="inner")
        g = pl.col("_g")
    else:
        groups = pl.DataFrame({"_g": [0]}, schema={"_g": pl.Int64})
        g = pl.lit(0, pl.Int64)
    b = (pl.col("units_lost") * bins).floor().clip(0, bins - 1)
    muscle = pl.col("muscle").to_physical() if per_muscle else None
    keyed = rel.select(
        pack(g, muscle, b), pl.col("muscle"), *[pl.col(f"{m}_rel").alias(m) for m in measures]
    )
    order = {m: i for i, m in enumerate(measures)}
    out = (
        quartiles(keyed, measures, keep=["muscle"] if per_muscle else [], name="measure")
        .with_columns(unpack())
        .join(groups.lazy(), on="_g", how="left")
        .with_columns(
            ((pl.col("_bin") + 0.5) / bins).alias("units_lost"),
            (pl.col("_bin") / bins).alias("lo"),
            ((pl.col("_bin") + 1) / bins).alias("hi"),
        )
    )
    if per_muscle:
        out = out.with_columns(pl.col("muscle").cast(pl.String))
    return (
        out.select(*by, "measure", "units_lost", "lo", "hi", "n", "median", "q25", "q75")
        .sort(pl.col("measure").replace_strict(order), *by, "units_lost")
        .collect(engine=ENGINE)
    )


def hidden_loss(
    run: Run,
    threshold: float = 0.8,
    measures: Sequence[str] = ("cmap_mv", "strength_fraction", "mune"),
    baseline: str = "healthy",
    by: str | Sequence[str] | None = "muscle",
    bins: int = 20,
    min_n: int = 5,
) -> pl.DataFrame:
    """Fraction of units lost before the median of a measure falls below ``threshold``.

    Reads the compensation curve (``bins`` bins; see :func:`loss_at`) where the median first
    drops below ``threshold`` times its baseline (calibration target
    ``reinnervation_hides_loss``: CMAP below 80% of baseline only after about half of the
    units are lost).

    Returns:
        The ``by`` columns, ``measure`` and ``units_lost`` (null where the median never falls
        below the threshold, or already starts below it).
    """
    curve = compensation_curve(run, baseline=baseline, bins=bins, by=by, measures=measures)
    return loss_at(curve, threshold, by, min_n)


def loss_at(
    curve: pl.DataFrame,
    threshold: float = 0.8,
    by: str | Sequence[str] | None = None,
    min_n: int = 5,
) -> pl.DataFrame:
    """Where each median curve of :func:`compensation` first falls below ``threshold``.

    Bins with fewer than ``min_n`` examinations are ignored; between bin centres the curve is
    interpolated linearly.

    Returns:
        The ``by`` columns, ``measure`` and ``units_lost`` (null if never below, or below from
        the first bin on).
    """
    by = group_columns(by)
    measures = list(dict.fromkeys(curve["measure"]))
    curve = curve.filter(pl.col("n") >= min_n)
    rows = []
    for key, g in curve.group_by([*by, "measure"], maintain_order=True):
        g = g.sort("units_lost")
        x, y = g["units_lost"].to_numpy(), g["median"].to_numpy()
        rows.append((*key, first_below(x, y, threshold)))
    schema = {**{c: curve.schema[c] for c in by}, "measure": pl.String, "units_lost": pl.Float64}
    out = pl.DataFrame(rows, schema=schema, orient="row")
    order = {m: i for i, m in enumerate(measures)}
    return out.sort(pl.col("measure").replace_strict(order, default=len(order)), *by)


def first_below(x: np.ndarray, y: np.ndarray, level: float) -> float | None:
    """The first ``x`` at which the curve through the points ``(x, y)`` (``x`` increasing,
    straight between points) falls below ``level``; None if it never does or starts below it.
    How much true unit loss a measure's median hides (:func:`loss_at`; calibration target
    ``reinnervation_hides_loss``)."""
    below = np.flatnonzero(y < level)
    if not len(below) or below[0] == 0:
        return None
    i = below[0]
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    return float(x0 + (y0 - level) / (y0 - y1) * (x1 - x0))
