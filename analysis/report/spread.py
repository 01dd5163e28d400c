"""Spread: months from onset to further regions, the region-to-region matrix, and the split hand
(APB/ADM CMAP ratio) against intact hands."""

from __future__ import annotations

import polars as pl

from analysis.report.context import HORIZON, Context
from analysis.report.page import blank_repeats
from analysis.report.plots import PHENOTYPE_COLOURS, colour, legend, new_figure, phenotype_bands
from analysis.report.text import count_share, iqr_of, join, num, pct
from analysis.spread import SPLIT_RATIO, split_hand_summary, spread_matrix, spread_times


def section(ctx: Context) -> str:
    """The Spread section: one figure and three tables."""
    sp = spread_times(ctx.run)
    sh = split_hand_summary(ctx.run, bin_months=6.0)
    pooled = split_hand_summary(ctx.run, by=None, bin_months=6.0)
    intact = pooled.filter(pl.col("hands") == "intact")
    fig, axes = new_figure(10.5, 3.9, 1, 2)
    ax = axes[0][0]
    n = len(ctx.phenotypes)
    for i, ph in enumerate(ctx.phenotypes):
        g = sp.filter((pl.col("phenotype") == ph) & (pl.col("reached") > 0))
        y = g["order"].to_numpy() + (i - (n - 1) / 2) * 0.18
        med = g["median"].to_numpy()
        ax.errorbar(med, y, xerr=[med - g["q25"].to_numpy(), g["q75"].to_numpy() - med],
                    fmt="o", color=colour(ph, PHENOTYPE_COLOURS, i), capsize=3,
                    label=ph)
    ax.set_yticks([2, 3, 4], ["2nd region", "3rd region", "4th region"])
    ax.invert_yaxis()
    ax.set_xlabel("months since symptom onset (median, IQR)")
    ax.set_title("spread to further regions", fontsize=10)
    legend(ax, frameon=False, fontsize=9)
    ax = axes[0][1]
    if len(intact) and intact["n"][0]:
        ref = intact.row(0, named=True)
        ax.axhspan(ref["ratio_q25"], ref["ratio_q75"], color="grey", alpha=0.15,
                   label="intact hands (IQR)")
    binned = sh.filter(
        (pl.col("hands") == "all") & (pl.col("n") >= 5) & (pl.col("months_since_onset") <= HORIZON)
    )
    phenotype_bands(ax, binned, ctx.phenotypes, "ratio_")
    ax.axhline(SPLIT_RATIO, color="black", linestyle="--", linewidth=0.8,
               label=f"split-hand cut-off {SPLIT_RATIO}")
    ax.set_xlabel("months since symptom onset")
    ax.set_ylabel("APB / ADM CMAP")
    ax.set_title("split hand", fontsize=10)
    ax.set_xlim(0, HORIZON)
    legend(ax, frameon=False, fontsize=8)
    figure = ctx.figure(
        fig,
        "Left: months from symptom onset to the second, third and fourth region to become "
        "symptomatic (median and interquartile range, among patients who reached it). "
        "Right: APB/ADM CMAP ratio over months since onset (median and IQR per 6-month "
        "bin), against hands with every unit alive. Sources: "
        "<code>analysis.spread_times(run)</code>, "
        "<code>analysis.split_hand_summary(run)</code>.",
    )
    nth = {2: "2nd", 3: "3rd", 4: "4th"}
    rows = blank_repeats([
        [r["phenotype"], nth.get(r["order"], str(r["order"])),
         count_share(r["reached"], r["share"]), iqr_of(r)]
        for r in ctx.ordered(sp, "order").iter_rows(named=True)
    ])
    sp_tab = ctx.table(
        ["latent phenotype", "region", "patients reaching it", "months since onset, "
         "median (IQR)"],
        rows,
        "Spread to further regions (bulbar, cervical, thoracic, lumbosacral; either side).",
    )
    mx = spread_matrix(ctx.run)
    rows = blank_repeats([
        [r["first_region"], r["region"], f"{num(r['reached'])} / {num(r['patients'])}",
         iqr_of(r)]
        for r in mx.iter_rows(named=True)
    ])
    mx_tab = ctx.table(
        ["first region", "later region", "reached", "months since onset, median (IQR)"],
        rows,
        "From the first symptomatic region to each other region. Source: "
        "<code>analysis.spread_matrix(run)</code>.",
    )
    rows = []
    shown = sh.filter(
        (pl.col("hands") == "all")
        & pl.col("months_since_onset").is_in([float(m) for m in (6, 12, 24, 36)])
    )
    both = [(r, "intact hands") for r in intact.iter_rows(named=True)] + [
        (r, r["phenotype"]) for r in ctx.ordered(shown).iter_rows(named=True)
    ]
    for r, who in both:
        when = ("any time" if r["hands"] == "intact"
                else f"{r['months_since_onset']:.0f} months")
        rows.append([who, when, num(r["n"]), iqr_of(r, "ratio_", 2), iqr_of(r, "index_"),
                     pct(r["split_share"])])
    sh_tab = ctx.table(
        ["latent phenotype", "when", "hands", "APB/ADM, median (IQR)",
         "split-hand index, median (IQR)", f"APB/ADM &lt; {SPLIT_RATIO}"],
        blank_repeats(rows),
        "Split hand (both sides; 6-month bins centred on the month shown). Split-hand "
        "index = APB &times; FDI / ADM CMAP (mV).",
    )
    parts = []
    for ph in ctx.phenotypes:
        g = sp.filter((pl.col("phenotype") == ph) & (pl.col("order") == 2))
        if len(g) and g["reached"][0]:
            parts.append(
                f"{num(g['median'][0])} months in latent {ph} ({pct(g['share'][0])} of "
                "patients reached one)"
            )
    prose = (
        "<p>A second region became symptomatic a median of " + join(parts) + ". "
        if parts else "<p>"
    )
    late = shown.filter(pl.col("months_since_onset") == 24.0)
    split = [
        f"{pct(r['split_share'])} of hands in latent {r['phenotype']}"
        for r in ctx.ordered(late).iter_rows(named=True)
    ]
    if split and len(intact):
        prose += (
            f"Two years after onset the APB/ADM ratio was below {SPLIT_RATIO} in "
            + join(split)
            + f", against {pct(intact['split_share'][0])} of intact hands."
        )
    prose += "</p>"
    return f"<h2>Spread</h2>{prose}{figure}{sp_tab}{mx_tab}{sh_tab}"
