"""Grouped quartiles of large inputs by exact selection (:mod:`analysis.quantiles`).

What must hold: the streamed selection gives exactly the numbers of polars' one-pass grouped
median and quartiles (ties, NaN, infinities, nulls and empty columns included), and the order
statistics it selects are those of a full sort, however small the memory it may use (a few
values a pass, two bins a histogram: many passes)."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import quantiles as Q

COLUMNS = ["a", "b", "c"]


def _frame(seed: int, rows: int, keys: int, ties: bool) -> pl.LazyFrame:
    rng = np.random.default_rng(seed)
    data = {"_k": rng.integers(0, keys, rows).astype(np.int64) * 7 - 20}
    data["muscle"] = data["_k"] % 3  # constant within a key
    for c in COLUMNS:
        v = rng.integers(0, 4, rows).astype(float) if ties else rng.normal(size=rows) * 1e3
        special = rng.uniform(size=rows)
        v = np.where(special < 0.03, np.nan, v)
        v = np.where((special >= 0.03) & (special < 0.05), np.inf, v)
        v = np.where((special >= 0.05) & (special < 0.06), -np.inf, v)
        data[c] = v
    df = pl.DataFrame(data)
    nulls = pl.Series(rng.uniform(size=rows) < 0.15)
    df = df.with_columns(pl.when(nulls).then(None).otherwise(pl.col("b")).alias("b"))
    return df.with_columns(pl.lit(None, pl.Float64).alias("c")).lazy() if seed % 5 == 0 \
        else df.lazy()


def _sorted(lf: pl.LazyFrame) -> pl.DataFrame:
    return lf.collect().sort("_k", "test").select("_k", "muscle", "test", "n", "median", "q25",
                                                  "q75")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 300), keys=st.integers(1, 12),
       ties=st.booleans(), way=st.sampled_from(["selection", "batches of keys"]))
def test_large_inputs_give_the_one_pass_numbers(seed, rows, keys, ties, way):
    """A budget of 0 values selects; a budget of the largest key's values batches keys."""
    lf = _frame(seed, rows, keys, ties)
    whole = _sorted(Q._quartiles(lf, COLUMNS, ["muscle"], "test"))
    largest = lf.group_by("_k").len().collect()["len"].max() * len(COLUMNS)
    budget = 0 if way == "selection" else largest
    got = _sorted(Q.quartiles(lf, COLUMNS, keep=["muscle"], budget=budget))
    assert got.equals(whole, null_equal=True), (whole, got)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 2000), pairs=st.integers(1, 6),
       collect=st.integers(1, 200), bins=st.integers(2, 16), ties=st.booleans())
def test_order_statistics_are_those_of_a_sort(seed, rows, pairs, collect, bins, ties):
    rng = np.random.default_rng(seed)
    k = rng.integers(0, pairs, rows)
    v = rng.integers(0, 5, rows).astype(float) if ties else rng.lognormal(0, 3, rows)
    long = pl.DataFrame({"_k": k, "_c": np.where(k % 2 == 0, "x", "y"), "_v": v})
    windows = long.group_by("_k", "_c").agg(
        pl.len().cast(pl.Int64).alias("count"), pl.col("_v").min().alias("lo"),
        pl.col("_v").max().alias("hi"))
    wanted = windows.select("_k", "_c", pl.int_ranges(0, "count").alias("rank")).explode("rank")
    wanted = wanted.sample(fraction=0.5, seed=seed) if wanted.height > 1 else wanted
    got = Q.order_statistics(long.lazy(), wanted, windows, collect=collect, bins=bins)
    assert got.height == wanted.height
    for key, rank, value in got.select("_k", "rank", "value").iter_rows():
        assert value == np.sort(v[k == key])[rank]


def test_a_small_input_is_grouped_in_one_lazy_pass():
    lf = _frame(1, 100, 5, ties=False)
    assert isinstance(Q.quartiles(lf, COLUMNS), pl.LazyFrame)
    assert Q.quartiles(lf, COLUMNS).collect().height == 5 * len(COLUMNS)


@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=30), rows=st.integers(1, 120))
def test_key_batches_keep_each_key_once_within_the_rows(sizes, rows):
    table = pl.DataFrame({"_k": np.arange(len(sizes), dtype=np.int64), "rows": sizes})
    batches = Q.key_batches(table, rows)
    assert [k for b in batches for k in b] == list(range(len(sizes)))
    for b in batches:
        assert sum(sizes[k] for k in b) <= rows or len(b) == 1
