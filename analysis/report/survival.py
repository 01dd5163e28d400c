"""Survival: Kaplan-Meier curves from symptom onset by latent phenotype and by onset site, with
median survival and survival at 1, 2, 3 and 5 years."""

from __future__ import annotations

import polars as pl

from analysis.report.context import Context
from analysis.report.page import blank_repeats
from analysis.report.plots import (
    PHENOTYPE_COLOURS,
    SITE_COLOURS,
    colour,
    legend,
    new_figure,
    sorted_groups,
)
from analysis.report.text import ci, join, num, pct
from analysis.survival import kaplan_meier, median_survival, survival_at


def section(ctx: Context) -> str:
    """The Survival section: one figure and one table."""
    groups = [("phenotype", "latent phenotype", PHENOTYPE_COLOURS),
              ("onset_site", "onset site", SITE_COLOURS)]
    fig, axes = new_figure(10.5, 3.9, 1, 2)
    tables = []
    for ax, (col, title, palette) in zip(axes[0], groups, strict=True):
        km = kaplan_meier(ctx.run, by=col)
        med = median_survival(ctx.run, by=col)
        names = sorted_groups(km[col].unique().to_list(), list(palette))
        if col == "phenotype":
            names = [p for p in ctx.phenotypes if p in names]
        for i, g in enumerate(names):
            k = km.filter(pl.col(col) == g).sort("time")
            t = [0.0, *k["time"].to_list()]
            s = [1.0, *k["survival"].to_list()]
            lo = [1.0, *k["lower"].fill_null(0.0).to_list()]
            hi = [1.0, *k["upper"].fill_null(0.0).to_list()]
            c = colour(g, palette, i)
            n = med.filter(pl.col(col) == g)["patients"][0]
            ax.step(t, s, where="post", color=c, linewidth=1.8, label=f"{g} (n={n:,})")
            ax.fill_between(t, lo, hi, step="post", color=c, alpha=0.15, linewidth=0)
        ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel("months since symptom onset")
        ax.set_title(f"by {title}", fontsize=10)
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, None)
        legend(ax, frameon=False, fontsize=9)
        at = survival_at(ctx.run, months=(12, 24, 36, 60), by=col)
        for g in names:
            m = med.filter(pl.col(col) == g).row(0, named=True)
            a = at.filter(pl.col(col) == g)
            cells = [
                f"{pct(s)} ({100 * (lo or 0):.0f}&ndash;{100 * (hi or 0):.0f})"
                if s is not None
                else "&ndash;"
                for s, lo, hi in zip(a["survival"], a["lower"], a["upper"], strict=True)
            ]
            tables.append([title, g, num(m["patients"]), num(m["deaths"]),
                           ci(m["median"], m["lower"], m["upper"]), *cells])
    axes[0][0].set_ylabel("surviving")
    figure = ctx.figure(
        fig,
        "Kaplan-Meier survival from symptom onset (death of any cause; alive at the end of "
        "the run: censored), with 95% pointwise confidence bands (log-log). Source: "
        "<code>analysis.kaplan_meier(run, by=\"phenotype\")</code> and "
        "<code>by=\"onset_site\"</code>.",
    )
    tab = ctx.table(
        ["grouping", "group", "patients", "deaths", "median months (95% CI)", "12 mo",
         "24 mo", "36 mo", "60 mo"],
        blank_repeats(tables),
        "Median survival with its 95% confidence interval (Brookmeyer-Crowley; n.r.: not "
        "reached within follow-up) and survival at 1, 2, 3 and 5 years. Source: "
        "<code>analysis.median_survival</code>, <code>analysis.survival_at</code>.",
    )
    med = ctx.ordered(median_survival(ctx.run, by="phenotype"))
    known = [
        f"{num(r['median'])} months in latent {r['phenotype']} (95% CI "
        f"{ci(r['median'], r['lower'], r['upper']).split('(')[1]}"
        for r in med.iter_rows(named=True) if r["median"] is not None
    ]
    unknown = [r["phenotype"] for r in med.iter_rows(named=True) if r["median"] is None]
    prose = "<p>"
    if known:
        prose += "Median survival from symptom onset was " + join(known) + ". "
    if unknown:
        prose += (
            f"Fewer than half of the latent {' and '.join(unknown)} patients died during "
            "follow-up, so their median is not reached. "
        )
    site = median_survival(ctx.run, by="onset_site")
    d = {r["onset_site"]: r["median"] for r in site.iter_rows(named=True)}
    if d.get("bulbar") is not None and d.get("limb") is not None:
        prose += (
            f"By onset site, the median was {num(d['bulbar'])} months after bulbar and "
            f"{num(d['limb'])} months after limb onset."
        )
    prose += "</p>"
    return f"<h2>Survival</h2>{prose}{figure}{tab}"
