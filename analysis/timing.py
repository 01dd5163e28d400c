"""Wall time of the ready queries on a run, for the benchmarks (``python -m analysis.timing RUN``).

Each query opens the run afresh (nothing cached between queries) and is timed from the call to
the returned DataFrame; the operating system's file cache is left as it is.
"""

from __future__ import annotations

import argparse
import json
import resource
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


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB): Linux's ``VmHWM``, which starts afresh
    at ``exec`` (``ru_maxrss`` keeps the parent's peak from before it); elsewhere
    ``ru_maxrss`` (bytes on macOS)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="analysis.timing", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--report", type=Path, help="also time progression report into this folder")
    p.add_argument("--query", choices=list(QUERIES),
                   help="time only this query and print it as JSON with this process's peak "
                        "memory (run one process per query to measure each)")
    args = p.parse_args(argv)
    if args.query:
        row = time_queries(args.run, [args.query]).row(0, named=True)
        row["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(row))
        return 0
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
