"""Count, median and quartiles of many columns in many groups, fast on large tables.

polars groups a table of 2 x 10^7 rows (the muscles table of a 10^5-patient run) several times
faster by one integer key than by a few string or categorical columns, so the grouped
summaries of this package pack their groups into one Int64 key (:func:`pack`), summarise by it
(:func:`quartiles`) and unpack the few result rows afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from analysis.io import ENGINE, Run, frames, patient_keys, patients

#: Bits of the packed key given to each part, lowest first: the bin (signed, offset), the
#: muscle's categorical code, then the patient group.
BIN_BITS, MUSCLE_BITS = 21, 16
_OFFSET = 1 << (BIN_BITS - 1)


def patient_groups(run: Run, by: Sequence[str]) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """Patients tagged with an integer group ``_g`` for the ``by`` columns.

    Returns:
        (LazyFrame of the patient keys (``patient_id``, and ``arm`` or ``point`` where the
        run has them: :func:`analysis.io.patient_keys`), ``_g`` and ``symptom_onset_month``;
        DataFrame of ``_g`` and the ``by`` columns, one row per group present).
    """
    keys = patient_keys(frames(run))
    pts = patients(run, [*keys, *by, "symptom_onset_month"])
    tagged, groups = group_index(pts, by)
    return tagged.select(*keys, "_g", "symptom_onset_month"), groups


def group_index(lf: pl.LazyFrame, by: Sequence[str]) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """``lf`` with an Int64 column ``_g`` numbering its combinations of the ``by`` columns in
    sorted order (nulls last; 0 for all rows when ``by`` is empty), and the DataFrame of ``_g``
    and the ``by`` columns, one row per combination present."""
    by = list(by)
    if not by:
        return lf.with_columns(pl.lit(0, pl.Int64).alias("_g")), pl.DataFrame(
            {"_g": [0]}, schema={"_g": pl.Int64}
        )
    groups = (
        lf.select(by).unique().sort(by, nulls_last=True).collect(engine=ENGINE)
        .with_row_index("_g").with_columns(pl.col("_g").cast(pl.Int64))
    )
    return lf.join(groups.lazy(), on=by, how="left", nulls_equal=True), groups


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


#: Most values (rows x value columns) :func:`quartiles` groups in memory in one pass (about 20
#: bytes each at the peak: 10^8 is about 2 GB); a larger input is summarised in batches of
#: keys or by exact selection in a few streamed passes (:func:`order_statistics`), with the
#: same result.
MAX_VALUES = 10**8
#: The quantiles of :func:`quartiles` and the names of their columns.
QUARTILES = {"q25": 0.25, "median": 0.5, "q75": 0.75}
#: Most histogram bins per window in one pass of :func:`order_statistics`, and most groups
#: (windows x bins) of that pass: polars' streaming group-by holds about 10 kB per group
#: (measured: 10^6 groups took 10 GB, 10^5 groups 1.4 GB).
HISTOGRAM_BINS, MAX_GROUPS = 1024, 1 << 16
#: Most values one pass of :func:`order_statistics` reads to sort (about 130 MB of them).
COLLECT_VALUES = 1 << 24


def quartiles(
    lf: pl.LazyFrame,
    columns: Sequence[str],
    keep: Sequence[str] = (),
    name: str = "test",
    budget: int | None = None,
) -> pl.LazyFrame:
    """Per ``_k``: for each of ``columns`` the count of non-null values, median, q25, q75.

    An input of at most ``budget`` values (rows x columns; default :data:`MAX_VALUES`; a
    first, streamed pass counts the rows of each key) is grouped in memory in one pass. A
    larger one, so that memory does not grow with the run: in passes over batches of whole
    keys that fit (:func:`key_batches`), or, when one key alone holds more values than fit,
    by exact selection (:func:`order_statistics`) in a few streamed passes. Either gives the
    one pass's numbers (NaN sorting last, as polars sorts).

    Args:
        lf: rows with an Int64 ``_k`` column and the value columns.
        columns: value columns to summarise (nulls ignored).
        keep: columns constant within a key to carry along (their first value).
        name: name of the output column naming the summarised column.
        budget: most values grouped in memory (default :data:`MAX_VALUES`).

    Returns:
        Long LazyFrame: ``_k``, the ``keep`` columns, ``name``, ``n``, ``median``, ``q25``,
        ``q75`` (linear interpolation, as numpy).
    """
    columns = list(columns)
    budget = MAX_VALUES if budget is None else budget
    sizes = (
        lf.group_by("_k")
        .agg(pl.len().alias("rows"), *[pl.col(c).first() for c in keep])
        .collect(engine=ENGINE)
    )
    if sizes["rows"].sum() * len(columns) <= budget:
        return _quartiles(lf, columns, keep, name)
    if sizes["rows"].max() * len(columns) > budget:
        return _selected_quartiles(lf, sizes.drop("rows"), columns, name).lazy()
    parts = [
        _quartiles(lf.filter(pl.col("_k").is_in(keys)), columns, keep, name)
        .collect(engine=ENGINE)
        for keys in key_batches(sizes, budget // len(columns))
    ]
    return pl.concat(parts).lazy()


def key_batches(sizes: pl.DataFrame, rows: int) -> list[list[int]]:
    """Consecutive keys of ``sizes`` (``_k``, ``rows``) in batches of at most ``rows`` rows
    (a key larger than that alone)."""
    batches, batch, n = [], [], 0
    for k, size in sizes.sort("_k").select("_k", "rows").iter_rows():
        if batch and n + size > rows:
            batches.append(batch)
            batch, n = [], 0
        batch.append(k)
        n += size
    return [*batches, batch] if batch else batches


def _selected_quartiles(
    lf: pl.LazyFrame, keys: pl.DataFrame, columns: list[str], name: str
) -> pl.DataFrame:
    """:func:`quartiles` of a large input by exact selection, in bounded memory. ``keys``:
    every ``_k`` with its ``keep`` columns (from the counting pass of :func:`quartiles`).

    Each column's values sort as polars sorts them: -inf, the finite values, +inf, NaN. The
    wanted ranks among the finite values are found by :func:`order_statistics`; the rest are
    read off the counts.
    """
    v = pl.col("_v")
    long = (
        lf.select("_k", *columns)
        .unpivot(index="_k", on=columns, variable_name=name, value_name="_v")
        .with_columns(v.cast(pl.Float64))
        .drop_nulls("_v")
    )
    finite = v.is_finite()
    # Plain aggregations of columns (not of filtered expressions): the streaming engine runs
    # them batch by batch.
    counts = (
        long.select(
            "_k", name, pl.when(finite).then(v).alias("_f"),
            (v == -math.inf).cast(pl.Int64).alias("_neg"),
            (v == math.inf).cast(pl.Int64).alias("_pos"),
        )
        .group_by("_k", name)
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("_neg").sum(),
            pl.col("_f").count().cast(pl.Int64).alias("_fin"),
            pl.col("_pos").sum(),
            pl.col("_f").min().alias("lo"),
            pl.col("_f").max().alias("hi"),
        )
        .collect(engine=ENGINE)
    )
    # Each quantile interpolates between the order statistics r0 and r1 (0-based), as polars.
    ranks = pl.concat([
        counts.select(
            "_k", name, "n", "_neg", "_fin", "_pos", pl.lit(q).alias("_q"),
            ((pl.col("n") - 1) * p).floor().cast(pl.Int64).alias("r0"),
            ((pl.col("n") - 1) * p - ((pl.col("n") - 1) * p).floor()).alias("_frac"),
        ).with_columns(pl.min_horizontal(pl.col("r0") + 1, pl.col("n") - 1).alias("r1"))
        for q, p in QUARTILES.items()
    ])
    wanted = (
        pl.concat([ranks.select("_k", name, "_neg", "_fin", pl.col(r).alias("rank"))
                   for r in ("r0", "r1")])
        .filter((pl.col("rank") >= pl.col("_neg"))
                & (pl.col("rank") < pl.col("_neg") + pl.col("_fin")))
        .select("_k", pl.col(name).alias("_c"), (pl.col("rank") - pl.col("_neg")).alias("rank"))
        .unique()
    )
    windows = counts.filter(pl.col("_fin") > 0).select(
        "_k", pl.col(name).alias("_c"), pl.col("_fin").alias("count"), "lo", "hi"
    )  # each pair's finite values
    found = order_statistics(
        long.filter(finite).rename({name: "_c"}), wanted, windows
    ).rename({"_c": name})

    def at(r: str) -> pl.Expr:
        """The value of order statistic ``r``: from the counts, or selected."""
        rank = pl.col(r)
        return (
            pl.when(rank < pl.col("_neg")).then(-math.inf)
            .when(rank < pl.col("_neg") + pl.col("_fin"))
            .then(pl.col(f"_{r}"))
            .when(rank < pl.col("_neg") + pl.col("_fin") + pl.col("_pos")).then(math.inf)
            .otherwise(math.nan)
        )

    for r in ("r0", "r1"):
        ranks = ranks.with_columns((pl.col(r) - pl.col("_neg")).alias("_sel")).join(
            found.select("_k", name, pl.col("rank").alias("_sel"), pl.col("value").alias(f"_{r}")),
            on=["_k", name, "_sel"],
            how="left",
        )
    lo, hi = at("r0"), at("r1")
    ranks = ranks.with_columns(
        pl.when((pl.col("_frac") == 0) | (lo == hi)).then(lo)
        .otherwise(lo + (hi - lo) * pl.col("_frac")).alias("_value")
    )
    values = ranks.pivot(on="_q", on_columns=list(QUARTILES), index=["_k", name, "n"],
                         values="_value")
    # Every key and column, as the one-pass summary gives them (n = 0: no quantiles).
    every = keys.join(pl.DataFrame({name: columns}), how="cross")
    return every.join(values, on=["_k", name], how="left").select(
        *keys.columns, name, pl.col("n").fill_null(0), "median", "q25", "q75"
    )


def order_statistics(
    long: pl.LazyFrame,
    wanted: pl.DataFrame,
    windows: pl.DataFrame,
    collect: int = COLLECT_VALUES,
    bins: int = HISTOGRAM_BINS,
) -> pl.DataFrame:
    """The ``rank``-th smallest value (0-based) of ``_v`` in each (``_k``, ``_c``), exactly,
    holding about ``collect`` values in memory at most (however many rows ``long`` has).

    Each wanted rank starts in the window of all its values. A streamed pass counts the values
    of every window in ``bins`` equal bins between its least and greatest value; the bin that
    holds the rank becomes its window (the values of a bin are exactly those between its least
    and greatest, since binning is monotone), until the window is one value repeated or small
    enough to read and sort with others (up to ``collect`` values a pass).

    Args:
        long: ``_k``, ``_c`` and finite Float64 ``_v`` (no nulls).
        wanted: ``_k``, ``_c``, ``rank`` (below the count of the pair's values).
        windows: per (``_k``, ``_c``) pair: ``count`` of values, least ``lo`` and greatest
            ``hi``.
        collect: most values read to sort in one pass.
        bins: most bins per window of a histogram pass.

    Returns:
        ``_k``, ``_c``, ``rank``, ``value``.
    """
    keys = ["_k", "_c"]
    windows = windows.with_columns(pl.lit(0, pl.Int64).alias("below")).with_row_index("_w")
    want = wanted.join(windows.select(*keys, "_w"), on=keys).select(*keys, "rank", "_w")
    found, next_id = [], windows.height
    while want.height:
        w = windows.join(want.select("_w").unique(), on="_w")
        flat = w.filter(pl.col("lo") == pl.col("hi"))
        found.append(want.join(flat.select("_w", pl.col("lo").alias("value")), on="_w"))
        w = w.filter(pl.col("lo") < pl.col("hi")).sort("count", "_w")
        take = w.filter(pl.col("count").cum_sum() <= collect)
        rest = w.join(take.select("_w"), on="_w", how="anti")
        if take.height:
            vals = (
                _within(long, take).select("_w", "_v").collect(engine=ENGINE)
                .sort("_w", "_v").with_row_index("_i")
            )
            start = vals.group_by("_w").agg(pl.col("_i").min().alias("_start"))
            picked = (
                want.join(take.select("_w", "below"), on="_w")
                .join(start, on="_w")
                .with_columns((pl.col("_start") + pl.col("rank") - pl.col("below")).alias("_i"))
            )
            found.append(picked.with_columns(value=vals["_v"].gather(picked["_i"])))
        if not rest.height:
            break
        b = max(2, min(bins, MAX_GROUPS // rest.height))
        v, lo, hi = pl.col("_v"), pl.col("lo"), pl.col("hi")
        hist = (
            _within(long, rest)
            .with_columns(((v - lo) / (hi - lo) * b).floor().clip(0, b - 1).cast(pl.Int32)
                          .alias("_bin"))
            .group_by("_w", "_bin")
            .agg(pl.len().cast(pl.Int64).alias("count"), v.min().alias("lo"),
                 v.max().alias("hi"))
            .collect(engine=ENGINE)
            .join(rest.select("_w", *keys, pl.col("below").alias("_below0")), on="_w")
            .sort("_w", "_bin")
            .with_columns(
                (pl.col("_below0") + pl.col("count").cum_sum().over("_w") - pl.col("count"))
                .alias("below")
            )
            .with_row_index("_nw", offset=next_id)
        )
        next_id += hist.height
        moved = (
            want.join(rest.select("_w"), on="_w").sort("rank")
            .join_asof(hist.select("_w", "_nw", "below").sort("below"),
                       left_on="rank", right_on="below", by="_w", strategy="backward",
                       check_sortedness=False)  # sorted as a whole, so within each window
        )
        want = moved.select(*keys, "rank", pl.col("_nw").alias("_w"))
        windows = hist.select(pl.col("_nw").alias("_w"), *keys, "count", "lo", "hi", "below")
    cols = [*keys, "rank", "value"]
    return pl.concat([f.select(cols) for f in found]) if found else wanted.with_columns(
        pl.lit(None, pl.Float64).alias("value"))


def _within(long: pl.LazyFrame, windows: pl.DataFrame) -> pl.LazyFrame:
    """The values of ``long`` in each window (``_w``, ``_k``, ``_c``, ``lo``, ``hi``)."""
    return long.join(
        windows.select("_w", "_k", "_c", "lo", "hi").lazy(), on=["_k", "_c"]
    ).filter(pl.col("_v").is_between(pl.col("lo"), pl.col("hi")))


def _quartiles(
    lf: pl.LazyFrame, columns: Sequence[str], keep: Sequence[str], name: str
) -> pl.LazyFrame:
    """:func:`quartiles` in one pass."""
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
