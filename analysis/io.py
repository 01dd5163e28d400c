"""Open a run as lazy polars frames, one per table, with hive partitions (arm, chunk)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

TABLES = ("patients", "visits", "muscles", "events")


def open_run(path: str | Path) -> dict[str, pl.LazyFrame]:
    """Lazy frames for a run's tables.

    Nothing is read until a query is collected; filters on ``arm`` prune whole partitions and
    other filters are pushed down into the Parquet scan. The ``chunk`` partition column is
    dropped: it is a storage detail, not data.

    Args:
        path: the run's output folder (holding ``patients/``, ``visits/``, ...).
    """
    root = Path(path)
    if not (root / "patients").is_dir():
        raise FileNotFoundError(f"{root}: not a progression run (no patients/ table)")
    frames = {}
    for name in TABLES + ("scans",):
        folder = root / name
        if not folder.is_dir():
            continue
        schema = {"arm": pl.String, "chunk": pl.Int64}
        if any(folder.glob("point=*")):  # a sweep: one more hive level
            schema = {"point": pl.Int64, **schema}
        frames[name] = pl.scan_parquet(
            folder / "**" / "*.parquet", hive_partitioning=True, hive_schema=schema
        ).drop("chunk")
    return frames


#: A run as the analysis functions accept it: the dict from :func:`open_run`, or its folder.
Run = Mapping[str, pl.LazyFrame] | str | Path

#: Onset region -> onset site as clinical papers group it (limb = arm or leg).
ONSET_SITE = {"bulbar": "bulbar", "cervical": "limb", "lumbosacral": "limb", "thoracic": "trunk"}


def frames(run: Run) -> Mapping[str, pl.LazyFrame]:
    """The lazy tables of ``run``: the dict itself, or :func:`open_run` of a folder."""
    if isinstance(run, (str, Path)):
        return open_run(run)
    missing = [t for t in TABLES if t not in run]
    if missing:
        raise KeyError(f"run has no {', '.join(missing)} table(s); use analysis.open_run(path)")
    return run


def patients(run: Run, columns: Sequence[str] = ()) -> pl.LazyFrame:
    """The patients table with ``columns`` (plus ``patient_id``), categories as plain strings.

    Besides the stored columns, ``onset_site`` is available: ``bulbar``, ``limb`` (cervical or
    lumbosacral onset) or ``trunk`` (thoracic onset), the grouping of clinical papers.
    """
    wanted = list(dict.fromkeys(["patient_id", *columns]))
    stored = [c for c in wanted if c != "onset_site"]
    if "onset_site" in wanted and "onset_region" not in stored:
        stored.append("onset_region")
    lf = frames(run)["patients"].select(stored).with_columns(
        pl.col(c).cast(pl.String) for c in stored if c in _CATEGORIES
    )
    if "onset_site" in wanted:
        lf = lf.with_columns(
            onset_site=pl.col("onset_region").replace_strict(ONSET_SITE, default="other")
        )
    return lf.select(wanted)


def group_columns(by: str | Sequence[str] | None) -> list[str]:
    """``by`` as a list of column names (``None`` -> no grouping)."""
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


_CATEGORIES = {
    "arm",
    "phenotype",
    "onset_region",
    "onset_side",
    "death_cause",
    "final_diagnosis",
    "muscle",
    "region",
    "side",
    "diagnosis",
    "event",
    "detail",
    "tone",
    "jaw_jerk",
    "dysarthria",
}


def strings(lf: pl.LazyFrame, columns: Sequence[str]) -> pl.LazyFrame:
    """``lf`` with the category columns among ``columns`` cast to plain strings."""
    return lf.with_columns(pl.col(c).cast(pl.String) for c in columns if c in _CATEGORIES)


def aggregate(lf: pl.LazyFrame, by: Sequence[str], *aggs: pl.Expr) -> pl.LazyFrame:
    """``lf.group_by(by).agg(aggs)``, or one row of ``aggs`` when ``by`` is empty."""
    return lf.group_by(list(by)).agg(*aggs) if by else lf.select(*aggs)
