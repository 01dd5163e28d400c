"""Spread: how the disease reaches further regions, and the split hand.

Region onsets come from the ``events`` table (``event == "region_onset"``: the month a region,
on one side, became symptomatic). A region counts as reached at its first onset on either side;
times are months since the patient's symptom onset (the first region's onset, give or take the
month's interpolation).

The split hand of ALS: the thenar muscles (APB, FDI) waste before the hypothenar ADM. The
split-hand index is APB x FDI / ADM (CMAP amplitudes in mV; Menon 2013, healthy above about 5)
and the simpler ratio APB / ADM (below 0.6 in most ALS; Lu 2022 meta-analysis).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

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
    strings,
)
from analysis.quantiles import (
    BIN_BITS,
    MUSCLE_BITS,
    group_index,
    median_quartiles,
    pack,
    quartiles,
    unpack,
)

#: APB / ADM CMAP ratio below which a hand counts as split (Lu 2022).
SPLIT_RATIO = 0.6
#: Examinations with at least this fraction of units alive in APB, FDI and ADM are intact hands.
INTACT_UNITS = 0.999


def region_onsets(run: Run, by: str | Sequence[str] | None = "phenotype") -> pl.DataFrame:
    """One row per patient and region reached: when, and in which order.

    Returns:
        ``patient_id`` (and ``arm`` or ``point`` where the run has them), the ``by`` columns,
        ``region``, ``side`` (of the first onset there),
        ``order`` (1 = first symptomatic region) and ``months_since_onset``.
    """
    return _region_onsets(run, group_columns(by)).collect(engine=ENGINE)


def _region_onsets(run: Run, by: list[str]) -> pl.LazyFrame:
    keys = patient_keys(frames(run))
    ids = patient_columns(run, by)
    ev = strings(
        frames(run)["events"]
        .select(*keys, "event", "month", "region", "detail")
        .filter(pl.col("event") == "region_onset"),
        ["region", "detail"],
    )
    first = (
        ev.sort(*keys, "month")
        .group_by(*keys, "region")
        .agg(pl.col("month").first(), pl.col("detail").first().alias("side"))
    )
    pts = patients(run, [*ids, "symptom_onset_month"]).filter(
        pl.col("symptom_onset_month").is_not_null()
    )
    return (
        first.join(pts, on=keys, how="inner")
        .with_columns(
            pl.col("month").rank("ordinal").over(keys).cast(pl.Int32).alias("order"),
            (pl.col("month") - pl.col("symptom_onset_month")).alias("months_since_onset"),
        )
        .select(*ids, "region", "side", "order", "months_since_onset")
        .sort(*keys, "order")
    )


def spread_times(run: Run, by: str | Sequence[str] | None = "phenotype") -> pl.DataFrame:
    """Months from symptom onset to the second, third and fourth region reached.

    Medians and quartiles are over the patients who reached that many regions (``reached``);
    the others died or were followed too briefly, so read them with ``share``.

    Returns:
        The ``by`` columns, ``order`` (2, 3, 4), ``patients`` (symptomatic), ``reached``,
        ``share``, ``median``, ``q25``, ``q75``.
    """
    by = group_columns(by)
    ons = pl.concat([  # a batch of patients at a time: at most four rows per patient come back
        _region_onsets(batch, by).filter(pl.col("order") >= 2).collect(engine=ENGINE)
        for batch in patient_batches(run)
    ]).lazy()
    pts = patients(run, [*by, "symptom_onset_month"]).filter(
        pl.col("symptom_onset_month").is_not_null()
    )
    n = aggregate(pts, by, pl.len().cast(pl.Int64).alias("patients"))
    stats = ons.group_by([*by, "order"]).agg(
        pl.len().cast(pl.Int64).alias("reached"), *median_quartiles("months_since_onset")
    )
    grid = pl.LazyFrame({"order": [2, 3, 4]}, schema={"order": pl.Int32})
    full = n.join(grid, how="cross")
    return (
        full.join(stats, on=[*by, "order"], how="left")
        .with_columns(pl.col("reached").fill_null(0))
        .with_columns((pl.col("reached") / pl.col("patients")).alias("share"))
        .select(*by, "order", "patients", "reached", "share", "median", "q25", "q75")
        .sort(*by, "order")
        .collect(engine=ENGINE)
    )


def spread_matrix(run: Run) -> pl.DataFrame:
    """From the first symptomatic region to each other region: how often and how soon.

    Returns:
        ``first_region``, ``region``, ``patients`` (with that first region), ``reached``,
        ``share``, ``median``, ``q25``, ``q75`` (months since onset).
    """
    ons = _region_onsets(run, [])
    keys = patient_keys(frames(run))
    first = ons.filter(pl.col("order") == 1).select(
        *keys, pl.col("region").alias("first_region")
    )
    n = first.group_by("first_region").agg(pl.len().cast(pl.Int64).alias("patients"))
    later = (
        ons.filter(pl.col("order") >= 2)
        .join(first, on=keys)
        .group_by("first_region", "region")
        .agg(pl.len().cast(pl.Int64).alias("reached"), *median_quartiles("months_since_onset"))
    )
    regions = ons.select("region").unique()
    return (
        n.join(regions, how="cross")
        .filter(pl.col("region") != pl.col("first_region"))
        .join(later, on=["first_region", "region"], how="left")
        .with_columns(pl.col("reached").fill_null(0))
        .with_columns((pl.col("reached") / pl.col("patients")).alias("share"))
        .select("first_region", "region", "patients", "reached", "share", "median", "q25", "q75")
        .sort("first_region", "region")
        .collect(engine=ENGINE)
    )


def _hands(run: Run, by: list[str]) -> pl.LazyFrame:
    """APB, FDI and ADM of one side at one visit side by side (``side`` categorical)."""
    t = frames(run)
    keys = patient_keys(t)
    mus = t["muscles"].select(
        *keys, "month", "muscle", "side", "cmap_mv", "units_alive_fraction"
    )
    pts = patients(run, [*keys, *by, "symptom_onset_month"])
    key = [*keys, "month", "side"]

    def one(name: str) -> pl.LazyFrame:
        low = name.lower()
        return mus.filter(pl.col("muscle") == name).select(
            *key,
            pl.col("cmap_mv").alias(f"{low}_mv"),
            pl.col("units_alive_fraction").alias(f"_{low}_alive"),
        )

    hands = one("APB").join(one("FDI"), on=key).join(one("ADM"), on=key)
    return hands.join(pts, on=keys, how="inner").select(
        *patient_columns(run, by),
        "month",
        (pl.col("month") - pl.col("symptom_onset_month")).alias("months_since_onset"),
        "side",
        "apb_mv",
        "fdi_mv",
        "adm_mv",
        (pl.col("apb_mv") * pl.col("fdi_mv") / pl.col("adm_mv")).alias("split_hand_index"),
        (pl.col("apb_mv") / pl.col("adm_mv")).alias("apb_adm_ratio"),
        pl.min_horizontal("_apb_alive", "_fdi_alive", "_adm_alive").alias("units_alive_min"),
    )


def _hands_on_disk(run: Run, by: list[str], columns: list[str], directory: Path) -> pl.LazyFrame:
    """``columns`` of the hand rows (:func:`_hands`), assembled a batch of patients at a time
    (:func:`analysis.io.patient_batches`) and written to Parquet files in ``directory``; a scan
    of them. Joining the three muscles holds a batch's rows in memory, not the run's."""
    for i, batch in enumerate(patient_batches(run)):
        _hands(batch, by).select(columns).sink_parquet(directory / f"{i:06d}.parquet")
    return pl.scan_parquet(directory / "*.parquet")


def split_hand(run: Run, by: str | Sequence[str] | None = "phenotype") -> pl.LazyFrame:
    """Per visit and side: APB, FDI and ADM CMAP, the split-hand index and APB/ADM ratio (lazy).

    Returns:
        A LazyFrame: ``patient_id`` (and ``arm`` or ``point`` where the run has them), the
        ``by`` columns, ``month``, ``months_since_onset``
        (null if never symptomatic), ``side``, ``apb_mv``, ``fdi_mv``, ``adm_mv``,
        ``split_hand_index`` (APB x FDI / ADM), ``apb_adm_ratio`` and ``units_alive_min`` (the
        smallest true fraction of units alive among the three muscles).
    """
    return _hands(run, group_columns(by)).with_columns(pl.col("side").cast(pl.String))


def split_hand_summary(
    run: Run, by: str | Sequence[str] | None = "phenotype", bin_months: float = 6.0
) -> pl.DataFrame:
    """Split hand over months since onset, by group, with intact hands as the reference.

    Hands with every unit alive in APB, FDI and ADM form the group ``hands == "intact"`` (months
    pooled, ``months_since_onset`` null); all hands of symptomatic patients form the group
    ``"all"``, binned by months since onset (nearest multiple of ``bin_months``).

    Returns:
        ``hands``, the ``by`` columns, ``months_since_onset``, ``n`` (hand examinations),
        ``index_median``, ``index_q25``, ``index_q75`` (split-hand index), ``ratio_median``,
        ``ratio_q25``, ``ratio_q75`` (APB/ADM) and ``split_share`` (ratio below
        :data:`SPLIT_RATIO`).
    """
    by = group_columns(by)
    columns = [*by, "months_since_onset", "split_hand_index", "apb_adm_ratio", "units_alive_min"]
    with tempfile.TemporaryDirectory(prefix="progression-hands-") as tmp:
        return _split_hand_table(_hands_on_disk(run, by, columns, Path(tmp)), by, bin_months)


def _split_hand_table(rows: pl.LazyFrame, by: list[str], bin_months: float) -> pl.DataFrame:
    """:func:`split_hand_summary` of the hand rows: the quartiles by :func:`quartiles` (memory
    bounded whatever the run's size), counts and shares by a streamed group-by."""
    t = pl.col("months_since_onset")
    tagged, groups = group_index(rows, by)
    g = pl.col("_g")
    # The intact hands (months pooled) take muscle slot 1 of the packed key, the binned ones 0.
    keyed = pl.concat([
        tagged.filter(pl.col("units_alive_min") >= INTACT_UNITS)
        .with_columns(pack(g, pl.lit(1), pl.lit(0))),
        tagged.filter(t.is_not_null())
        .with_columns(pack(g, None, (t / bin_months).round(0).cast(pl.Int64))),
    ]).select("_k", "split_hand_index", "apb_adm_ratio")
    shares = keyed.group_by("_k").agg(
        pl.len().cast(pl.Int64).alias("n"),
        (pl.col("apb_adm_ratio") < SPLIT_RATIO).mean().alias("split_share"),
    )
    spread_of = (
        quartiles(keyed, ["split_hand_index", "apb_adm_ratio"], name="_c")
        .with_columns(pl.col("_c").replace_strict(
            {"split_hand_index": "index_", "apb_adm_ratio": "ratio_"}, return_dtype=pl.String))
        .unpivot(index=["_k", "_c"], on=["median", "q25", "q75"], variable_name="_s",
                 value_name="_v")
        .with_columns((pl.col("_c") + pl.col("_s")).alias("_s"))
        .collect(engine=ENGINE)
        .pivot(on="_s", index="_k", values="_v")
    )
    intact = pl.col("_k") // (1 << BIN_BITS) % (1 << MUSCLE_BITS) == 1
    cols = ["hands", *by, "months_since_onset", "n", "index_median", "index_q25", "index_q75",
            "ratio_median", "ratio_q25", "ratio_q75", "split_share"]
    return (
        shares.collect(engine=ENGINE)
        .join(spread_of, on="_k", how="left")
        .with_columns(*unpack(), pl.when(intact).then(pl.lit("intact")).otherwise(pl.lit("all"))
                      .alias("hands"))
        .with_columns(pl.when(pl.col("hands") == "all").then(pl.col("_bin") * bin_months)
                      .alias("months_since_onset"))
        .join(groups, on="_g", how="left")
        .select(cols)
        .sort("hands", *by, "months_since_onset", descending=[True] + [False] * (len(by) + 1),
              nulls_last=True)
    )
