"""Ready queries on a run's Parquet dataset (reads only the dataset, never the engine)."""

from analysis.io import TABLES, open_run

__all__ = ["TABLES", "open_run"]
