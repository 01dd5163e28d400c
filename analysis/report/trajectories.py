"""Test trajectories: every test's median and interquartile range over months since onset by
latent phenotype, at 12, 24 and 36 months, and the per-patient slopes."""

from __future__ import annotations

import polars as pl

from analysis.report.context import CONFUSION_MONTHS, HORIZON, Context
from analysis.report.page import blank_repeats
from analysis.report.plots import legend, new_figure, phenotype_bands
from analysis.report.text import iqr_of, join, num
from analysis.trajectories import MUSCLE_TESTS, TESTS, slopes, trajectory_quartiles

#: Muscle shown for each muscle-level test in the trajectory figure (a TMS target for CMCT).
TRAJECTORY_MUSCLE = "APB"
#: Y-axis limits of the bounded scores in the trajectory figure.
_YLIM = {"mrc_grade": (0, 5.2), "fibrillation_grade": (0, 4.2), "alsfrs_r": (0, 48.5)}


def _name(test: str) -> str:
    """A test's name, with the muscle shown for a muscle-level test."""
    return TESTS[test] + (f" ({TRAJECTORY_MUSCLE})" if test in MUSCLE_TESTS else "")


def section(ctx: Context) -> str:
    """The Test trajectories section: one figure and two tables."""
    tr = trajectory_quartiles(ctx.run, muscles=[TRAJECTORY_MUSCLE], min_n=5)
    tr = tr.filter(
        (pl.col("muscle").is_null() | (pl.col("muscle") == TRAJECTORY_MUSCLE))
        & (pl.col("months_since_onset") <= HORIZON)
        & (pl.col("months_since_onset") >= 0)
    )
    tests = list(TESTS)
    fig, axes = new_figure(10.5, 8.4, 3, 3)
    for ax, test in zip(axes.flat, tests, strict=True):
        phenotype_bands(ax, tr.filter(pl.col("test") == test), ctx.phenotypes, alpha=0.18)
        ax.set_title(_name(test), fontsize=10)
        ax.set_xlim(0, HORIZON)
        if test in _YLIM:
            ax.set_ylim(*_YLIM[test])
    for ax in axes[-1]:
        ax.set_xlabel("months since symptom onset")
    legend(axes[0][0], frameon=False, fontsize=9, title="latent phenotype")
    figure = ctx.figure(
        fig,
        f"Test results over months since onset: median (line) and interquartile range "
        f"(band) by latent phenotype, in 3-month bins with at least 5 examinations. Muscle "
        f"tests are shown for {TRAJECTORY_MUSCLE} (both sides); every muscle is in the "
        "table the function returns. Source: <code>analysis.trajectory_quartiles(run)</code>.",
    )
    header = ["test", "latent phenotype", *[f"{m} months" for m in CONFUSION_MONTHS]]
    rows = []
    for test in tests:
        g = tr.filter(pl.col("test") == test)
        for ph in ctx.phenotypes:
            row = [_name(test), ph]
            for m in CONFUSION_MONTHS:
                x = g.filter(
                    (pl.col("phenotype") == ph) & (pl.col("months_since_onset") == float(m))
                )
                row.append(iqr_of(x.row(0, named=True)) if len(x) else "&ndash;")
            rows.append(row)
    tab = ctx.table(
        header, blank_repeats(rows),
        "Median (interquartile range) of each test at 12, 24 and 36 months after onset "
        "(visits within 1.5 months).",
    )
    sl = ctx.ordered(slopes(ctx.run))
    rows = [
        [r["phenotype"], TESTS[r["test"]], num(r["patients"]), num(r["mean"], 2),
         iqr_of(r, digits=2)]
        for r in sl.iter_rows(named=True)
    ]
    slope_tab = ctx.table(
        ["latent phenotype", "test", "patients", "mean slope per month",
         "median (IQR) per month"],
        rows,
        "Per-patient least-squares slopes over all visits. Source: "
        "<code>analysis.slopes(run)</code>.",
    )
    parts = [
        f"{num(r['mean'], 2)} points per month in latent {r['phenotype']}"
        for r in sl.filter(pl.col("test") == "alsfrs_r").iter_rows(named=True)
    ]
    svc = [
        f"{num(r['mean'], 2)} points in {r['phenotype']}"
        for r in sl.filter(pl.col("test") == "svc_percent").iter_rows(named=True)
    ]
    prose = (
        "<p>The ALSFRS-R changed by a mean of " + join(parts)
        + "; the slow vital capacity (% predicted) by " + join(svc) + " per month.</p>"
        if parts else ""
    )
    return f"<h2>Test trajectories</h2>{prose}{figure}{tab}{slope_tab}"
