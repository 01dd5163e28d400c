"""Count, median and quartiles of many columns in many groups, fast on large tables.

polars groups a table of 2 x 10^7 rows (the muscles table of a 10^5-patient run) several times
faster by one integer key than by a few string or categorical columns, so the grouped
summaries of this package pack their groups into one Int64 key (:func:`pack`), summarise by it
(:func:`quartiles`) and unpack the few result rows afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from analysis.io import Run, patients

#: Bits of the packed key given to each part, lowest first: the bin (signed, offset), the
#: muscle's categorical code, then the patient group.
BIN_BITS, MUSCLE_BITS = 21, 16
_OFFSET = 1 << (BIN_BITS - 1)


def patient_groups(run: Run, by: Sequence[str]) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """Patients tagged with an integer group ``_g`` for the ``by`` columns.

    Returns:
        (LazyFrame of ``patient_id``, ``_g``, ``symptom_onset_month``; DataFrame of ``_g``
        and the ``by`` columns, one row per group present).
    """
    by = list(by)
    pts = patients(run, [*by, "symptom_onset_month"])
    if not by:
        return pts.with_columns(pl.lit(0, pl.Int64).alias("_g")), pl.DataFrame(
            {"_g": [0]}, schema={"_g": pl.Int64}
        )
    groups = (
        pts.select(by).unique().sort(by, nulls_last=True).collect()
        .with_row_index("_g").with_columns(pl.col("_g").cast(pl.Int64))
    )
    tagged = pts.join(groups.lazy(), on=by, how="left", nulls_equal=True).select(
        "patient_id", "_g", "symptom_onset_month"
    )
    return tagged, groups


def pack(group: pl.Expr, muscle: pl.Expr | None, bin_: pl.Expr) -> pl.Expr:
    """One Int64 key from a group index, a muscle code (or none) and a signed bin index."""
    m = pl.lit(0, pl.Int64) if muscle is None else muscle.cast(pl.Int64)
    return (
        group.cast(pl.Int64) * (1 << (MUSCLE_BITS + BIN_BITS))
        + m * (1 << BIN_BITS)
        + (bin_.cast(pl.Int64) + _OFFSET)
    ).alias("_k")


def unpack(key: str = "_k") -> list[pl.Expr]:
    """``_g`` and ``_bin`` (signed) back from a packed key."""
    k = pl.col(key)
    return [
        (k // (1 << (MUSCLE_BITS + BIN_BITS))).alias("_g"),
        (k % (1 << BIN_BITS) - _OFFSET).alias("_bin"),
    ]


def median_quartiles(column: str | pl.Expr, prefix: str = "") -> list[pl.Expr]:
    """Aggregations ``<prefix>median``, ``<prefix>q25`` and ``<prefix>q75`` of ``column``
    (nulls ignored; quartiles by linear interpolation, as numpy)."""
    e = pl.col(column) if isinstance(column, str) else column
    return [
        e.median().alias(f"{prefix}median"),
        e.quantile(0.25, interpolation="linear").alias(f"{prefix}q25"),
        e.quantile(0.75, interpolation="linear").alias(f"{prefix}q75"),
    ]


def quartiles(
    lf: pl.LazyFrame, columns: Sequence[str], keep: Sequence[str] = (), name: str = "test"
) -> pl.LazyFrame:
    """Per ``_k``: for each of ``columns`` the count of non-null values, median, q25, q75.

    Args:
        lf: rows with an Int64 ``_k`` column and the value columns.
        columns: value columns to summarise (nulls ignored).
        keep: columns constant within a key to carry along (their first value).
        name: name of the output column naming the summarised column.

    Returns:
        Long LazyFrame: ``_k``, the ``keep`` columns, ``name``, ``n``, ``median``, ``q25``,
        ``q75`` (linear interpolation, as numpy).
    """
    aggs = [pl.col(c).first() for c in keep]
    for c in columns:
        v = pl.col(c).cast(pl.Float64)
        aggs += [
            v.count().cast(pl.Float64).alias(f"{c}\x1fn"),
            *median_quartiles(v, f"{c}\x1f"),
        ]
    index = ["_k", *keep]
    return (
        lf.group_by("_k")
        .agg(aggs)
        .unpivot(index=index, variable_name="_c", value_name="_v")
        .with_columns(pl.col("_c").str.split_exact("\x1f", 1).struct.rename_fields([name, "_s"]))
        .unnest("_c")
        .pivot(on="_s", on_columns=["n", "median", "q25", "q75"], index=[*index, name],
               values="_v")
        .with_columns(pl.col("n").cast(pl.Int64))
    )
