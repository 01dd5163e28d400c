"""Cohort: patients, symptomatic, seen and dead by latent phenotype, with age and site at
onset."""

from __future__ import annotations

import polars as pl

from analysis.report.context import Context
from analysis.report.text import num, pct


def section(ctx: Context) -> str:
    """The Cohort section: the run's patients by latent phenotype."""
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
