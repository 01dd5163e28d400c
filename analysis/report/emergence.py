"""Phenotype emergence: the clinical diagnosis against the latent phenotype over months since
onset (stacked states), the confusion tables, time to diagnosis and conversions to ALS."""

from __future__ import annotations

import polars as pl

from analysis.emergence import (
    DIAGNOSES,
    STATES,
    confusion,
    conversions,
    phenotype_emergence,
    time_to_diagnosis,
)
from analysis.report.context import CONFUSION_MONTHS, HORIZON, Context
from analysis.report.page import blank_repeats
from analysis.report.plots import STATE_COLOURS, new_figure
from analysis.report.text import count_share, iqr_of, num, pct


def section(ctx: Context) -> str:
    """The Phenotype emergence section: one figure and three tables."""
    months = [float(m) for m in range(0, int(HORIZON) + 1)]
    em = phenotype_emergence(ctx.run, months=months)
    n = len(ctx.phenotypes)
    fig, axes = new_figure(3.3 * n + 1.2, 3.2, 1, n)
    for ax, ph in zip(axes[0], ctx.phenotypes, strict=True):
        g = em.filter(pl.col("phenotype") == ph)
        ys = [
            g.filter(pl.col("state") == s).sort("months_since_onset")["share"]
            .fill_null(0.0).to_numpy()
            for s in STATES
        ]
        ax.stackplot(months, ys, labels=STATES,
                     colors=[STATE_COLOURS[s] for s in STATES], alpha=0.95)
        followed = g.filter(pl.col("state") == "dead")["followed"][0]
        ax.set_title(f"latent {ph} (n={followed:,})", fontsize=10)
        ax.set_xlim(0, HORIZON)
        ax.set_ylim(0, 1)
        ax.set_xlabel("months since symptom onset")
        ax.grid(False)
    axes[0][0].set_ylabel("share of patients")
    handles, labels = axes[0][0].get_legend_handles_labels()
    labels = ["not yet seen", "seen, no diagnosis", "PMA", "PLS", "ALS", "dead"]
    fig.legend(handles[::-1], labels[::-1], loc="outside right center", fontsize=9,
               frameon=False)
    figure = ctx.figure(
        fig,
        "Clinical diagnosis by months since symptom onset, for each latent phenotype: the "
        "state of every patient still followed (alive, or dead), stacked. Diagnoses are "
        "those of the most recent visit; they emerge from the findings, not from the "
        "latent label. Source: <code>analysis.phenotype_emergence(run)</code>.",
    )

    conf = confusion(ctx.run, months=CONFUSION_MONTHS)
    rows = []
    conf = conf.sort("months_since_onset", ctx.phenotype_rank())
    for r in conf.iter_rows(named=True):
        seen = r["seen"]
        rows.append([
            f"{r['months_since_onset']:.0f}", r["phenotype"], num(seen),
            *[count_share(r[c], r[c] / seen if seen else None) for c in ("none", *DIAGNOSES)],
        ])
    conf_tab = ctx.table(
        ["months since onset", "latent phenotype", "seen", "no diagnosis", "PMA", "PLS",
         "ALS"],
        rows,
        "Latent phenotype against the diagnosis last recorded by each month, among the "
        "patients seen by then (rows sum to <i>seen</i>). Source: "
        "<code>analysis.confusion(run, months=(12, 24, 36))</code>.",
    )

    ttd = time_to_diagnosis(ctx.run)
    rows = [
        [r["phenotype"], r["diagnosis"], count_share(r["diagnosed"], r["share"]), iqr_of(r),
         num(r["median_after_first_visit"])]
        for r in ctx.ordered(ttd.filter(pl.col("diagnosed") > 0)).iter_rows(named=True)
    ]
    rows = blank_repeats(rows)
    ttd_tab = ctx.table(
        ["latent phenotype", "diagnosis", "patients diagnosed", "months from onset, median "
         "(IQR)", "months from first visit, median"],
        rows,
        "Time from symptom onset to the first visit giving each diagnosis (<i>any</i>: the "
        "first diagnosis of whatever kind), among patients who received it. Source: "
        "<code>analysis.time_to_diagnosis(run)</code>.",
    )

    conv = conversions(ctx.run)
    rows = [
        [r["phenotype"], r["conversion"], num(r["first_diagnosed"]),
         count_share(r["converted"], r["share"]), iqr_of(r), num(r["median_months_to_ALS"])]
        for r in ctx.ordered(conv.filter(pl.col("first_diagnosed") > 0)).iter_rows(
            named=True
        )
    ]
    conv_tab = ctx.table(
        ["latent phenotype", "conversion", "first diagnosed", "converted",
         "months between, median (IQR)", "months from onset to ALS, median"],
        rows,
        "Conversions: patients whose first diagnosis was PMA or PLS and who later met ALS "
        "criteria. Source: <code>analysis.conversions(run)</code>.",
    ) if rows else "<p>No patient received a first diagnosis of PMA or PLS.</p>"

    text = []
    for ph in ctx.phenotypes:
        g = ttd.filter((pl.col("phenotype") == ph) & (pl.col("diagnosis") == ph))
        at = conf.filter(
            (pl.col("phenotype") == ph) & (pl.col("months_since_onset") == 12.0)
        )
        right = (
            f"; 12 months after onset, {pct(at[ph][0] / at['seen'][0])} of those seen "
            f"had that diagnosis"
            if len(at) and at["seen"][0] and ph in at.columns else ""
        )
        if len(g) and g["diagnosed"][0]:
            text.append(
                f"Of {g['patients'][0]:,} symptomatic patients with latent {ph}, "
                f"{pct(g['share'][0])} were diagnosed {ph} during follow-up, a median of "
                f"{num(g['median'][0])} months after onset{right}."
            )
    c = conv.filter(pl.col("converted") > 0)
    for r in c.iter_rows(named=True):
        text.append(
            f"Among latent {r['phenotype']} patients first diagnosed "
            f"{r['conversion'].split('->')[0]}, {pct(r['share'])} later converted to ALS, "
            f"a median of {num(r['median'])} months later."
        )
    prose = "<p>" + " ".join(text) + "</p>" if text else ""
    return (
        "<h2>Phenotype emergence</h2>"
        "<p>Patients are examined from a referral delay after symptom onset, then at "
        "regular visits; the diagnosis at each visit is what the accumulated findings "
        "support (ALS: upper and lower motor neuron dysfunction; PMA: lower only; PLS: upper "
        "only for at least two years).</p>"
        f"{prose}{figure}{conf_tab}{ttd_tab}{conv_tab}"
    )
