"""Open a run as lazy polars frames, one per table, with hive partitions (arm, chunk)."""

from __future__ import annotations

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
        frames[name] = pl.scan_parquet(
            folder / "**" / "*.parquet",
            hive_partitioning=True,
            hive_schema={"arm": pl.String, "chunk": pl.Int64},
        ).drop("chunk")
    return frames
