"""What ``progression power`` writes: ``power.parquet``, ``sample_size.csv`` and ``power.html``
(the power curves as an embedded figure, and the tables)."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from analysis.endpoints import TrialData
from analysis.sample_size import sample_size


def _figure_png(power: pl.DataFrame, alpha: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trt = power.filter(pl.col("comparison") == "treatment")
    fig, ax = plt.subplots(figsize=(8.5, 5.2), dpi=110)
    cmap = plt.get_cmap("tab10")
    for i, ((endpoint, arm), g) in enumerate(
        trt.sort("n_per_arm").group_by(["endpoint", "arm"], maintain_order=True)
    ):
        label = endpoint if trt["arm"].n_unique() == 1 else f"{endpoint} ({arm})"
        c, ls = cmap(i % 10), ("-", "--", ":")[(i // 10) % 3]
        ax.plot(g["n_per_arm"], g["power"], marker="o", ls=ls, color=c, label=label, lw=1.6, ms=4)
        ax.fill_between(g["n_per_arm"], g["ci_low"], g["ci_high"], color=c, alpha=0.15, lw=0)
    for level, style in ((0.8, "--"), (0.9, ":")):
        ax.axhline(level, color="0.4", ls=style, lw=0.8)
    ax.axhline(alpha, color="0.6", ls="-", lw=0.6)
    ax.set_xscale("log")
    ax.minorticks_off()
    ns = sorted(set(trt["n_per_arm"].to_list()))
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("patients per arm")
    ax.set_ylabel("power")
    ax.set_title("Power by simulated trial (bands: 95% Monte Carlo intervals)")
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "&ndash;"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _html_table(df: pl.DataFrame, columns: Sequence[str]) -> str:
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r[c])}</td>" for c in columns) + "</tr>"
        for r in df.iter_rows(named=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(
    power: pl.DataFrame, sizes: pl.DataFrame, data: TrialData, run: str, alpha: float,
    warning: str = "",
) -> str:
    """The HTML page: the power curves as an embedded PNG and the tables (``warning``, e.g.
    that the run is incomplete, heads the page)."""
    o = data.options
    opts = (
        f"T = {data.trial_months:g} months, visits every {o.visit_interval:g} months, extra "
        f"dropout {o.dropout_per_month:g}/month, enrichment: {o.enrich or 'none'}; pool "
        f"{len(data.ids)} enrolled patients"
    )
    doc = pl.DataFrame(
        {"endpoint": list(data.summaries),
         "definition": [s.endpoint.doc for s in data.summaries.values()]}
    )
    summary = sizes.join(doc, on="endpoint", how="left")
    cols = ["endpoint", "arm", "n80", "n80_low", "n80_high", "n90", "n90_low", "n90_high",
            "type_I_error", "true_effect", "unit", "definition"]
    pcols = ["endpoint", "comparison", "arm", "n_per_arm", "replicates", "rejections", "power",
             "ci_low", "ci_high", "mean_estimate", "true_effect", "unit"]
    png = _figure_png(power, alpha)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Power: {run}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:13px;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}}
th{{background:#f3f3f3}} td:first-child{{text-align:left}}</style></head><body>
<h1>Power by simulated trial</h1>
{f'<p style="color:#8a1c1c"><b>Warning: {html.escape(warning)}.</b></p>' if warning else ""}
<p>Run <code>{run}</code>. {opts}. Alpha {alpha:g} ({power['sided'][0]}-sided),
{power['replicates'][0]} replicates per point.</p>
<img alt="power versus patients per arm" src="data:image/png;base64,{png}">
<h2>Sample size</h2>
<p>Patients per arm for 80% and 90% power, interpolated on the simulated curve (probit of power
against the square root of n); intervals from the curves of the power's 95% limits. Type I
error: rejections in null trials (placebo against placebo) over all sizes.</p>
{_html_table(summary, cols)}
<h2>All simulated points</h2>
{_html_table(power.sort("endpoint", "comparison", "n_per_arm"), pcols)}
</body></html>
"""


def write_outputs(
    power: pl.DataFrame, data: TrialData, out: str | Path, run: str, alpha: float,
    warning: str = "",
) -> dict[str, Path]:
    """Write ``power.parquet``, ``sample_size.csv`` and ``power.html`` into ``out``; a
    ``warning`` (an incomplete run) heads the page and fills a ``warning`` column of both
    tables."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = sample_size(power)
    if warning:
        power, sizes = (df.with_columns(warning=pl.lit(warning)) for df in (power, sizes))
    paths = {
        "power": out / "power.parquet",
        "sample_size": out / "sample_size.csv",
        "html": out / "power.html",
    }
    power.write_parquet(paths["power"])
    sizes.write_csv(paths["sample_size"])
    paths["html"].write_text(render_html(power, sizes, data, run, alpha, warning))
    return paths


__all__ = ["render_html", "write_outputs"]
