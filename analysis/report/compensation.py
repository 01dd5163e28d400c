"""Compensation: CMAP, MUNE, MUNIX and strength against the true fraction of motor units lost,
and the loss each hides before it falls below 80% of healthy."""

from __future__ import annotations

import polars as pl

from analysis.compensation import MEASURES, compensation_curve, loss_at
from analysis.report.context import Context
from analysis.report.plots import MEASURE_COLOURS, legend, median_band, new_figure
from analysis.report.text import pct


def _against_loss(ax, title: str, units_left: str | None = None) -> None:
    """Finish axes of measures against the fraction of units lost: the units left (dotted,
    labelled ``units_left``), 80% of healthy (dashed), the axes' limits and labels."""
    ax.plot([0, 1], [1, 0], color="black", linestyle=":", linewidth=1, label=units_left)
    ax.axhline(0.8, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("true fraction of motor units lost")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.4)


def section(ctx: Context) -> str:
    """The Compensation section: one figure and one table."""
    three = ["cmap_mv", "mune", "munix"]
    curve = compensation_curve(ctx.run, bins=20)
    by_muscle = compensation_curve(ctx.run, bins=20, by="muscle", measures=three)
    fig, axes = new_figure(10.5, 3.9, 1, 2)
    ax = axes[0][0]
    for m, label in MEASURES.items():
        g = curve.filter((pl.col("measure") == m) & (pl.col("n") >= 5))
        if not len(g):
            continue
        median_band(ax, g, "", MEASURE_COLOURS[m], label, x="units_lost")
    _against_loss(ax, "all muscles", units_left="units left")
    ax.set_ylabel("relative to healthy")
    legend(ax, frameon=False, fontsize=9)
    ax = axes[0][1]
    muscles = by_muscle["muscle"].unique().sort().to_list()
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    for i, mu in enumerate(muscles):
        g = by_muscle.filter(
            (pl.col("muscle") == mu) & (pl.col("n") >= 5) & (pl.col("measure") == "cmap_mv")
        )
        ax.plot(g["units_lost"].to_numpy(), g["median"].to_numpy(), color=cmap(i % 10),
                label=mu, linewidth=1.4)
    _against_loss(ax, "CMAP by muscle (median)")
    legend(ax, frameon=False, fontsize=8, ncols=2)
    figure = ctx.figure(
        fig,
        "The compensation curve: CMAP, MUNE, MUNIX and strength relative to the muscle's "
        "healthy value (the median over examinations with every unit alive) against the "
        "true fraction of units lost, median and interquartile range in bins of 5%. The "
        "dotted line is the fraction of units left, the dashed line 80% of healthy. Strength "
        "includes upper motor neuron weakness. Source: "
        "<code>analysis.compensation_curve(run, bins=20)</code>.",
    )
    hid = loss_at(by_muscle, by="muscle")
    pooled = loss_at(curve.filter(pl.col("measure").is_in(three)))
    wide = hid.pivot(on="measure", index="muscle", values="units_lost").sort("muscle")
    rows = [
        [r["muscle"], *[pct(r.get(m)) for m in ("cmap_mv", "mune", "munix")]]
        for r in wide.iter_rows(named=True)
    ]
    p = {r["measure"]: r["units_lost"] for r in pooled.iter_rows(named=True)}
    rows.append(["<b>all muscles</b>", *[f"<b>{pct(p.get(m))}</b>"
                                         for m in ("cmap_mv", "mune", "munix")]])
    tab = ctx.table(
        ["muscle", "CMAP", "MUNE", "MUNIX"],
        rows,
        "Fraction of motor units lost when the median of each measure first falls below "
        "80% of healthy. Source: <code>analysis.hidden_loss(run)</code>.",
    )
    text = (
        "<p>Collateral reinnervation hides motor unit loss: the median CMAP stayed above 80% "
        f"of its healthy value until {pct(p.get('cmap_mv'))} of the units were lost, "
        f"whereas the median MUNE fell below it after {pct(p.get('mune'))} and MUNIX after "
        f"{pct(p.get('munix'))}.</p>"
    )
    return f"<h2>Compensation</h2>{text}{figure}{tab}"
