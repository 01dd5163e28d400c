"""One self-contained HTML report of a run, written like the results section of a paper.

``progression report RUN --out DIR`` (or ``python -m analysis.report RUN --out DIR``) writes
``DIR/report.html``: prose with the key figures, PNG plots (matplotlib, embedded as base64, so
the file can be mailed or archived alone) and the tables behind them. Every number comes from
the functions of this package, named in each caption so that a reader can reproduce it.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from analysis.compensation import MEASURES, compensation_curve, loss_at
from analysis.emergence import (
    DIAGNOSES,
    STATES,
    confusion,
    conversions,
    phenotype_emergence,
    time_to_diagnosis,
)
from analysis.io import RunReadError, open_run, write_atomic
from analysis.report import page
from analysis.report.context import CONFUSION_MONTHS, HORIZON, Context
from analysis.report.page import blank_repeats
from analysis.report.plots import (
    MEASURE_COLOURS,
    PHENOTYPE_COLOURS,
    SITE_COLOURS,
    STATE_COLOURS,
    colour,
    legend,
    median_band,
    new_figure,
    sorted_groups,
)
from analysis.report.text import ci, iqr, join, num, pct
from analysis.spread import SPLIT_RATIO, split_hand_summary, spread_matrix, spread_times
from analysis.survival import kaplan_meier, median_survival, survival_at
from analysis.trajectories import MUSCLE_TESTS, TESTS, slopes, trajectory_quartiles

#: Muscle shown for each muscle-level test in the trajectory figure (a TMS target for CMCT).
TRAJECTORY_MUSCLE = "APB"
#: Y-axis limits of the bounded scores in the trajectory figure.
_YLIM = {"mrc_grade": (0, 5.2), "fibrillation_grade": (0, 4.2), "alsfrs_r": (0, 48.5)}


class ReportError(Exception):
    """A report that cannot be written (no run there, or a report already there)."""


# ----------------------------------------------------------------------------- sections


# ----------------------------------------------------- provenance and cohort

def provenance(ctx: Context) -> tuple[str, str]:
    name, text = ctx.path.name, ""
    scenario = ctx.path / "scenario.toml"
    if scenario.is_file():
        try:
            doc = tomllib.loads(scenario.read_text())
            name = doc.get("name", name)
            text = doc.get("description", "")
        except tomllib.TOMLDecodeError:
            pass
    facts = []
    manifest = ctx.path / "manifest.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
            facts = [
                f"{m.get('patients', len(ctx.cohort)):,} patients",
                f"seed {m.get('seed')}",
                f"arms: {', '.join(m.get('arms', []))}",
                f"scenario hash {str(m.get('scenario_hash', ''))[:12]}",
                f"progression {m.get('version', '?')}",
            ]
        except (json.JSONDecodeError, AttributeError):
            facts = []
    meta = " &middot; ".join(html.escape(f) for f in facts)
    return html.escape(str(name)), f"{html.escape(text)}<br><span class=meta>{meta}</span>"

def cohort_section(ctx: Context) -> str:
    c = ctx.cohort
    symptomatic = c.filter(pl.col("symptom_onset_month").is_not_null())
    rows = []
    for ph in ctx.all_phenotypes:
        g = c.filter(pl.col("phenotype") == ph)
        s = g.filter(pl.col("symptom_onset_month").is_not_null())
        site = {k: (s["onset_site"] == k).mean() if len(s) else None
                for k in ("bulbar", "limb", "trunk")}
        rows.append([
            ph,
            num(len(g)),
            num(len(s)),
            num(g["first_visit_month"].is_not_null().sum()),
            num(g["death_month"].is_not_null().sum()),
            num(s["age_at_onset_years"].median()),
            " / ".join(pct(site[k]) for k in ("bulbar", "limb", "trunk")),
        ])
    share = ", ".join(
        f"{ph} {pct((c['phenotype'] == ph).mean(), 1)}" for ph in ctx.all_phenotypes
    )
    text = (
        f"<p>The run holds {len(c):,} simulated patients (latent phenotypes: {share}). "
        f"{len(symptomatic):,} became symptomatic during the run, "
        f"{c['first_visit_month'].is_not_null().sum():,} were seen by a neurologist and "
        f"{c['death_month'].is_not_null().sum():,} died. Unless stated otherwise, times are "
        "months since symptom onset, and patients never symptomatic are left out.</p>"
    )
    tab = ctx.table(
        ["latent phenotype", "patients", "symptomatic", "seen", "died",
         "median age at onset (y)", "onset bulbar / limb / trunk"],
        rows,
        "Cohort by latent phenotype (the truth, which the clinician never sees).",
    )
    return f"<h2>Cohort</h2>{text}{tab}"

# ----------------------------------------------------------------- emergence

def emergence_section(ctx: Context) -> str:
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
    rank = {p: i for i, p in enumerate(ctx.phenotypes)}
    conf = conf.sort("months_since_onset", pl.col("phenotype").replace_strict(rank))
    for r in conf.iter_rows(named=True):
        seen = r["seen"]
        rows.append([
            f"{r['months_since_onset']:.0f}", r["phenotype"], num(seen),
            *[f"{num(r[c])} ({pct(r[c] / seen if seen else None)})"
              for c in ("none", *DIAGNOSES)],
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
        [r["phenotype"], r["diagnosis"], f"{num(r['diagnosed'])} ({pct(r['share'])})",
         iqr(r["median"], r["q25"], r["q75"]), num(r["median_after_first_visit"])]
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
         f"{num(r['converted'])} ({pct(r['share'])})",
         iqr(r["median"], r["q25"], r["q75"]), num(r["median_months_to_ALS"])]
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

# -------------------------------------------------------------- trajectories

def trajectory_section(ctx: Context) -> str:
    tr = trajectory_quartiles(ctx.run, muscles=[TRAJECTORY_MUSCLE], min_n=5)
    tr = tr.filter(
        (pl.col("muscle").is_null() | (pl.col("muscle") == TRAJECTORY_MUSCLE))
        & (pl.col("months_since_onset") <= HORIZON)
        & (pl.col("months_since_onset") >= 0)
    )
    tests = list(TESTS)
    fig, axes = new_figure(10.5, 8.4, 3, 3)
    for ax, test in zip(axes.flat, tests, strict=True):
        g = tr.filter(pl.col("test") == test)
        for i, ph in enumerate(ctx.phenotypes):
            p = g.filter(pl.col("phenotype") == ph).sort("months_since_onset")
            if not len(p):
                continue
            col = colour(ph, PHENOTYPE_COLOURS, i)
            median_band(ax, p, "", col, ph, alpha=0.18)
        where = f" ({TRAJECTORY_MUSCLE})" if test in MUSCLE_TESTS else ""
        ax.set_title(TESTS[test] + where, fontsize=10)
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
        where = f" ({TRAJECTORY_MUSCLE})" if test in MUSCLE_TESTS else ""
        for ph in ctx.phenotypes:
            row = [TESTS[test] + where, ph]
            for m in CONFUSION_MONTHS:
                x = g.filter(
                    (pl.col("phenotype") == ph) & (pl.col("months_since_onset") == float(m))
                )
                row.append(
                    iqr(x["median"][0], x["q25"][0], x["q75"][0]) if len(x) else "&ndash;"
                )
            rows.append(row)
    tab = ctx.table(
        header, blank_repeats(rows),
        "Median (interquartile range) of each test at 12, 24 and 36 months after onset "
        "(visits within 1.5 months).",
    )
    sl = ctx.ordered(slopes(ctx.run))
    rows = [
        [r["phenotype"], TESTS[r["test"]], num(r["patients"]), num(r["mean"], 2),
         iqr(r["median"], r["q25"], r["q75"], 2)]
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

# -------------------------------------------------------------- compensation

def compensation_section(ctx: Context) -> str:
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
    ax.plot([0, 1], [1, 0], color="black", linestyle=":", linewidth=1, label="units left")
    ax.axhline(0.8, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("true fraction of motor units lost")
    ax.set_ylabel("relative to healthy")
    ax.set_title("all muscles", fontsize=10)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.4)
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
    ax.plot([0, 1], [1, 0], color="black", linestyle=":", linewidth=1)
    ax.axhline(0.8, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("true fraction of motor units lost")
    ax.set_title("CMAP by muscle (median)", fontsize=10)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.4)
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

# ------------------------------------------------------------------ survival

def survival_section(ctx: Context) -> str:
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

# -------------------------------------------------------------------- spread

def spread_section(ctx: Context) -> str:
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
    for i, ph in enumerate(ctx.phenotypes):
        g = sh.filter(
            (pl.col("hands") == "all") & (pl.col("phenotype") == ph) & (pl.col("n") >= 5)
            & (pl.col("months_since_onset") <= HORIZON)
        ).sort("months_since_onset")
        if not len(g):
            continue
        c = colour(ph, PHENOTYPE_COLOURS, i)
        median_band(ax, g, "ratio_", c, ph)
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
         f"{num(r['reached'])} ({pct(r['share'])})",
         iqr(r["median"], r["q25"], r["q75"])]
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
         iqr(r["median"], r["q25"], r["q75"])]
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
        rows.append([who, when, num(r["n"]),
                     iqr(r["ratio_median"], r["ratio_q25"], r["ratio_q75"], 2),
                     iqr(r["index_median"], r["index_q25"], r["index_q75"]),
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


#: The sections in order, each with the name a heading gives it if it cannot be drawn.
SECTIONS: list[tuple[str, Callable[[Context], str]]] = [
    ("cohort", cohort_section),
    ("emergence", emergence_section),
    ("trajectory", trajectory_section),
    ("compensation", compensation_section),
    ("survival", survival_section),
    ("spread", spread_section),
]


def _drawn(name: str, build: Callable[[Context], str], ctx: Context) -> str:
    """A section's HTML, or one line saying why it could not be drawn (the rest still is)."""
    try:
        return build(ctx)
    except (pl.exceptions.PolarsError, ValueError, IndexError, KeyError, TypeError) as e:
        return page.not_drawn(name, e)


def render(run: str | Path, allow_incomplete: bool = False) -> str:
    """The report of ``run`` as one HTML document (figures embedded); an incomplete run only
    with ``allow_incomplete``, and then a warning heads the report."""
    ctx = Context.open(Path(run), allow_incomplete)
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
        open_run(run, allow_incomplete=allow_incomplete)  # lazy: refuses what it cannot read
    except RunReadError as e:
        hint = "" if allow_incomplete or "incomplete" not in str(e) else " (or --allow-incomplete)"
        raise ReportError(f"{e}{hint}") from None
    target = out / "report.html"
    if target.exists() and not overwrite:
        raise ReportError(f"{target} exists; pass --overwrite to replace it")
    try:
        text = render(run, allow_incomplete)
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

