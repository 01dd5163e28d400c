"""The least-squares line through a patient's visits: the one definition of a per-patient slope.

:func:`line_from_sums` is the formula, on the sums over a group's points (the per-patient
summaries of a trial, :mod:`analysis.endpoints`, hold exactly these sums); :func:`slopes_by`
applies it to every group of a table (a patient's visits, or one muscle's examinations).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


def line_from_sums(n, sum_x, sum_xx, sum_y, sum_xy):
    """Intercept and slope ``(a, b)`` of the least-squares line ``y = a + b x`` through ``n``
    points, from the sums of ``x``, ``x^2``, ``y`` and ``x y`` over them::

        b = (n sum_xy - sum_x sum_y) / (n sum_xx - sum_x^2)
        a = (sum_xx sum_y - sum_x sum_xy) / (n sum_xx - sum_x^2)

    ``b`` is in units of ``y`` per unit of ``x`` (ALSFRS-R points per month against months), ``a``
    in units of ``y`` (the line at ``x = 0``). Elementwise on numbers, numpy arrays or polars
    expressions. With fewer than two distinct ``x`` there is no line (the denominator is 0 and
    numpy gives inf or nan): callers keep the groups with two or more.
    """
    inv = 1.0 / (n * sum_xx - sum_x * sum_x)
    return (sum_xx * sum_y - sum_x * sum_xy) * inv, (n * sum_xy - sum_x * sum_y) * inv


def slopes_by(
    points: pl.LazyFrame | pl.DataFrame,
    y: str,
    by: Sequence[str],
    x: str = "month",
    min_points: int = 2,
) -> pl.LazyFrame:
    """Per group of ``by`` (a patient; a patient's muscle and side): the least-squares slope of
    ``y`` against ``x`` over the group's rows where ``y`` is measured (not null, not NaN).

    Groups with fewer than ``min_points`` such rows, or with a single ``x``, have no slope and are
    left out.

    Returns:
        A LazyFrame sorted by ``by``: the ``by`` columns, ``points`` (rows used), ``slope``
        (units of ``y`` per unit of ``x``: per month against ``month``) and ``first`` (``y`` at
        the smallest ``x``).
    """
    by = list(by)
    seen = pl.col(y).is_not_null() & pl.col(y).cast(pl.Float64).is_not_nan()
    xs = pl.col(x).cast(pl.Float64).filter(seen)
    ys = pl.col(y).cast(pl.Float64).filter(seen)
    _, slope = line_from_sums(
        pl.col("points"), pl.col("_sx"), pl.col("_sxx"), pl.col("_sy"), pl.col("_sxy")
    )
    return (
        points.lazy()
        .group_by(by)
        .agg(
            ys.len().alias("points"),
            xs.sum().alias("_sx"),
            (xs * xs).sum().alias("_sxx"),
            ys.sum().alias("_sy"),
            (xs * ys).sum().alias("_sxy"),
            (xs.max() > xs.min()).alias("_spread"),
            ys.sort_by(xs).first().alias("first"),
        )
        .filter((pl.col("points") >= min_points) & pl.col("_spread"))
        .select(*by, pl.col("points").cast(pl.Int64), slope.alias("slope"), "first")
        .sort(by)
    )


__all__ = ["line_from_sums", "slopes_by"]
