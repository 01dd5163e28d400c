"""One self-contained HTML report of a run, written like the results section of a paper.

``progression report RUN --out DIR`` (or ``python -m analysis.report RUN --out DIR``) writes
``DIR/report.html``: prose with the key figures, PNG plots (matplotlib, embedded as base64, so
the file can be mailed or archived alone) and the tables behind them. Every number comes from
the functions of this package, named in each caption so that a reader can reproduce it.

This module writes the page (:func:`render`, :func:`write_report`, :func:`main`). Each section
is one function ``section(ctx)`` in its own module (``cohort``, ``emergence``, ``trajectories``,
``compensation``, ``survival``, ``spread``), run in the order of :data:`SECTIONS` on one
:class:`~analysis.report.context.Context` (the run, its cohort, the phenotype order, the figure
and table numbering). ``provenance`` gives the title, ``text`` formats numbers, ``plots`` holds
the figure helpers and colours, ``page`` the HTML of tables, figures and the page itself.
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from analysis.io import RunReadError, RunStatus, open_run, run_status, write_atomic
from analysis.report import cohort, compensation, emergence, page, spread, survival, trajectories
from analysis.report.context import Context
from analysis.report.provenance import provenance


class ReportError(Exception):
    """A report that cannot be written (no run there, or a report already there)."""


#: The sections in order, each with the name a heading gives it if it cannot be drawn.
SECTIONS: list[tuple[str, Callable[[Context], str]]] = [
    ("cohort", cohort.section),
    ("emergence", emergence.section),
    ("trajectory", trajectories.section),
    ("compensation", compensation.section),
    ("survival", survival.section),
    ("spread", spread.section),
]


def _drawn(name: str, build: Callable[[Context], str], ctx: Context) -> str:
    """A section's HTML, or one line saying why it could not be drawn (the rest still is)."""
    try:
        return build(ctx)
    except (pl.exceptions.PolarsError, ValueError, IndexError, KeyError, TypeError) as e:
        return page.not_drawn(name, e)


def render(run: str | Path, allow_incomplete: bool = False, status: RunStatus | None = None) -> str:
    """The report of ``run`` as one HTML document (figures embedded); an incomplete run only
    with ``allow_incomplete``, and then a warning heads the report. ``status``: the run's
    :func:`analysis.io.run_status`, if known."""
    ctx = Context.open(Path(run), allow_incomplete, status)
    title, sub = provenance(ctx)
    if not ctx.status.complete:
        sub = (f"<p class=warning><b>Warning: {html.escape(ctx.status.describe())}.</b> Every "
               "figure and table below describes only these patients.</p>" + sub)
    sections = SECTIONS
    if not ctx.phenotypes:
        sections = sections[:1]
        note = (
            "<p>No patient became symptomatic during the run, so there is nothing to report "
            "in months since onset.</p>"
        )
    else:
        note = ""
    body = "\n".join(_drawn(name, build, ctx) for name, build in sections) + note
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    footer = (f"Written by <code>progression report</code> on {stamp} from "
              f"{html.escape(str(Path(run).resolve()))}.")
    return page.document(title, sub, body, footer)


def write_report(
    run: str | Path, out: str | Path, overwrite: bool = False, allow_incomplete: bool = False
) -> Path:
    """Write ``out/report.html`` for the run folder ``run``; returns its path.

    Raises:
        ReportError: ``out`` is an existing file, ``run`` is not a whole, intact run (unless
            ``allow_incomplete``, for an unfinished one), or the report exists and not
            ``overwrite``.
    """
    run, out = Path(run), Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out} exists and is not a folder")
    try:
        status = run_status(run)
        open_run(run, allow_incomplete=allow_incomplete, status=status)  # refuses what it can't
    except RunReadError as e:
        raise ReportError(str(e)) from None
    target = out / "report.html"
    if target.exists() and not overwrite:
        raise ReportError(f"{target} exists; pass --overwrite to replace it")
    try:
        text = render(run, allow_incomplete, status)
    except (pl.exceptions.PolarsError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ReportError(f"{run}: cannot read the run ({first})") from e
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(target, text)
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m analysis.report RUN --out DIR [--overwrite]``."""
    p = argparse.ArgumentParser(prog="analysis.report", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="run folder (progression run --out)")
    p.add_argument("--out", type=Path, required=True, help="folder for report.html")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="report the complete chunks of an unfinished run (said in the report)")
    args = p.parse_args(argv)
    try:
        path = write_report(args.run, args.out, overwrite=args.overwrite,
                            allow_incomplete=args.allow_incomplete)
    except ReportError as e:
        print(f"analysis.report: error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0

