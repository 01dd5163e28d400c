"""Wall time of the ready queries on a run, for the benchmarks (``python -m analysis.timing RUN``).

Each query opens the run afresh (nothing cached between queries) and is timed from the call to
the returned DataFrame; the operating system's file cache is left as it is.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

import analysis as a

#: Query name -> function of the dict from :func:`analysis.open_run`.
QUERIES: dict[str, Callable[[dict], pl.DataFrame]] = {
    "phenotype_emergence": lambda r: a.phenotype_emergence(r),
    "confusion": lambda r: a.confusion(r),
    "time_to_diagnosis": lambda r: a.time_to_diagnosis(r),
    "conversions": lambda r: a.conversions(r),
    "trajectory_quartiles": lambda r: a.trajectory_quartiles(r),
    "slopes": lambda r: a.slopes(r),
    "compensation_curve": lambda r: a.compensation_curve(r),
    "hidden_loss": lambda r: a.hidden_loss(r),
    "healthy_reference": lambda r: a.healthy_reference(r),
    "kaplan_meier": lambda r: a.kaplan_meier(r),
    "median_survival": lambda r: a.median_survival(r, by="onset_site"),
    "spread_times": lambda r: a.spread_times(r),
    "split_hand_summary": lambda r: a.split_hand_summary(r),
}


def time_queries(path: str | Path, names: list[str] | None = None) -> pl.DataFrame:
    """Wall seconds, CPU seconds (all threads) and result rows of each query in
    :data:`QUERIES` (or ``names``) on ``path``."""
    rows = []
    for name in names or list(QUERIES):
        t0, c0 = time.perf_counter(), time.process_time()
        out = QUERIES[name](a.open_run(path))
        rows.append((name, time.perf_counter() - t0, time.process_time() - c0, out.height))
    schema = {"query": pl.String, "seconds": pl.Float64, "cpu_seconds": pl.Float64,
              "rows": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="analysis.timing", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--report", type=Path, help="also time progression report into this folder")
    args = p.parse_args(argv)
    with pl.Config(tbl_rows=len(QUERIES) + 2):
        print(time_queries(args.run))
    if args.report:
        from analysis.report import write_report

        t0 = time.perf_counter()
        write_report(args.run, args.report, overwrite=True)
        print(f"report: {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
