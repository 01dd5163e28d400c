"""Global sensitivity of a sweep's outcomes to its parameters (SALib), as a table and an HTML page.

Reads only a sweep folder's ``points.parquet`` (the design, with the [sweep] section in its
metadata) and ``summary.parquet`` (one row of outcomes per point); replicate seeds of a design
row are averaged first. By the sweep's method:

- ``sobol``: Sobol first-order (``s1``) and total (``st``) indices, SALib ``analyze.sobol``
  (Saltelli 2010 / Jansen estimators), bootstrap confidence intervals (``*_conf``: half-width);
- ``morris``: Morris elementary effects, SALib ``analyze.morris``: ``mu_star`` (mean absolute
  effect, in outcome units over the parameter's range), its bootstrap ``mu_star_conf``, and
  ``sigma`` (spread of the effects: interactions or non-linearity);
- ``latin``: first-order indices by RBD-FAST (SALib ``analyze.rbd_fast``), ``s1`` and ``s1_conf``.

An outcome with a missing value at some point (e.g. median survival not reached) or no variance
cannot be decomposed; it is listed in the page as skipped, with the reason.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from analysis.io import write_atomic

POINTS = "points.parquet"
SUMMARY = "summary.parquet"
META_SWEEP = b"progression.sweep"
IDS = ("point", "sample", "replicate", "seed")
COLUMNS = {
    "outcome": pl.String,
    "parameter": pl.String,
    "method": pl.String,
    "s1": pl.Float64,
    "s1_conf": pl.Float64,
    "st": pl.Float64,
    "st_conf": pl.Float64,
    "mu_star": pl.Float64,
    "mu_star_conf": pl.Float64,
    "sigma": pl.Float64,
}


class SensitivityError(Exception):
    """The folder cannot be analysed; one line, fit for the terminal."""


@dataclass
class Result:
    """Indices of every analysable outcome, and the outcomes skipped with their reason."""

    table: pl.DataFrame
    method: str
    parameters: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    design_rows: int = 0
    replicates: int = 1


def _read(sweep: Path) -> tuple[dict, pl.DataFrame, pl.DataFrame]:
    points_path, summary_path = sweep / POINTS, sweep / SUMMARY
    for p in (points_path, summary_path):
        if not p.is_file():
            raise SensitivityError(f"{sweep}: no {p.name}; run progression sweep into it first")
    meta = pq.read_schema(points_path).metadata or {}
    if META_SWEEP not in meta:
        raise SensitivityError(f"{points_path}: no sweep design in its metadata")
    return json.loads(meta[META_SWEEP]), pl.read_parquet(points_path), pl.read_parquet(
        summary_path
    )


def sensitivity(
    sweep: str | Path, *, num_resamples: int = 1000, conf_level: float = 0.95, seed: int = 0
) -> Result:
    """Sensitivity indices of every outcome of ``sweep/summary.parquet`` to every parameter.

    Args:
        sweep: a ``progression sweep`` folder (or any folder with the two tables).
        num_resamples: bootstrap resamples of the confidence intervals.
        conf_level: confidence level of the intervals.
        seed: seed of the bootstrap.

    Returns:
        A :class:`Result` whose ``table`` has :data:`COLUMNS` (indices of the other method
        null), one row per outcome and parameter.
    """
    sweep = Path(sweep)
    spec, points, summary = _read(sweep)
    method = spec["method"]
    # "points": explicit values (progression.studies.sweep.plan_points)
    if method in ("grid", "points"):
        raise SensitivityError(
            f"{sweep}: a {method} sweep has no sensitivity design; use method = 'sobol', "
            "'morris' or 'latin' in [sweep]"
        )
    names = [p["name"] for p in spec["parameters"]]
    problem = {
        "num_vars": len(names),
        "names": names,
        "bounds": [[p["low"], p["high"]] for p in spec["parameters"]],
    }
    outcomes = [c for c in summary.columns if c not in IDS and c not in names]
    joined = points.join(summary, on="point", how="left")
    if joined.height != points.height or summary.height < points.height:
        raise SensitivityError(f"{sweep}: summary.parquet lacks rows for some points")
    rows = (
        joined.group_by("sample")
        .agg(*[pl.col(n).first() for n in names],
             *[pl.col(o).cast(pl.Float64).mean() for o in outcomes],
             *[pl.col(o).is_null().any().alias(f"{o}\x1fnull") for o in outcomes])
        .sort("sample")
    )
    x = rows.select(names).to_numpy().astype(np.float64)
    out, skipped = [], {}
    for o in outcomes:
        y = rows[o].to_numpy().astype(np.float64)
        missing = int(rows[f"{o}\x1fnull"].sum() + np.isnan(y).sum())
        if missing:
            skipped[o] = f"no value at {missing} of {len(y)} design rows"
            continue
        if not np.ptp(y) > 0:
            skipped[o] = "the same value at every point"
            continue
        out.extend(_indices(method, problem, x, y, o, spec, num_resamples, conf_level, seed))
    table = pl.DataFrame(out, schema=COLUMNS, orient="row") if out else pl.DataFrame(
        schema=COLUMNS
    )
    return Result(table, method, names, skipped, rows.height, int(spec.get("replicates", 1)))


def _indices(method, problem, x, y, outcome, spec, num_resamples, conf_level, seed) -> list:
    """Rows of :data:`COLUMNS` for one outcome."""
    names = problem["names"]
    if method == "sobol":
        from SALib.analyze import sobol

        r = sobol.analyze(problem, y, calc_second_order=False, num_resamples=num_resamples,
                          conf_level=conf_level, seed=seed)
        return [(outcome, n, "sobol", r["S1"][i], r["S1_conf"][i], r["ST"][i], r["ST_conf"][i],
                 None, None, None) for i, n in enumerate(names)]
    if method == "morris":
        from SALib.analyze import morris

        r = morris.analyze(problem, x, y, num_resamples=num_resamples, conf_level=conf_level,
                           num_levels=int(spec["levels"]), seed=seed)
        return [(outcome, n, "morris", None, None, None, None, r["mu_star"][i],
                 r["mu_star_conf"][i], r["sigma"][i]) for i, n in enumerate(names)]
    if method == "latin":
        from SALib.analyze import rbd_fast

        r = rbd_fast.analyze(problem, x, y, num_resamples=num_resamples, conf_level=conf_level,
                             seed=seed)
        return [(outcome, n, "rbd_fast", r["S1"][i], r["S1_conf"][i], None, None, None, None,
                 None) for i, n in enumerate(names)]
    raise SensitivityError(f"unknown sweep method {method!r}")


# --------------------------------------------------------------------------------- the page


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _chart(outcome: str, rows: pl.DataFrame, method: str) -> str:
    """One bar chart (PNG, base64) of an outcome's indices per parameter."""
    from matplotlib.figure import Figure

    names = rows["parameter"].to_list()
    fig = Figure(figsize=(7, 0.45 * len(names) + 1.3))
    ax = fig.add_subplot()
    pos = np.arange(len(names))
    h = 0.38
    if method == "morris":
        bars = [("mu_star", "mu_star_conf", "mu* (mean |effect|)"), ("sigma", None, "sigma")]
    elif method == "sobol":
        bars = [("s1", "s1_conf", "S1 (first order)"), ("st", "st_conf", "ST (total)")]
    else:
        bars = [("s1", "s1_conf", "S1 (first order, RBD-FAST)")]
    for j, (col, conf, label) in enumerate(bars):
        err = None if conf is None else rows[conf].fill_null(0).to_numpy()
        ax.barh(pos + (j - (len(bars) - 1) / 2) * h, rows[col].to_numpy(), height=h,
                xerr=err, capsize=3, label=label, color=("#4c72b0", "#dd8452", "#55a868")[j])
    ax.set_yticks(pos, names)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.6)
    ax.set_title(outcome)
    ax.set_xlabel("index (error bars: bootstrap confidence interval)" if method != "morris"
                  else "outcome units over the parameter's range")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def _fmt(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def render(result: Result, title: str = "Which parameters matter") -> str:
    """The HTML page: a table and one bar chart per outcome."""
    t = result.table
    cols = (["s1", "s1_conf", "st", "st_conf"] if result.method != "morris"
            else ["mu_star", "mu_star_conf", "sigma"])
    if result.method == "latin":
        cols = ["s1", "s1_conf"]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
        "text-align:right}td:first-child,td:nth-child(2){text-align:left}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Method: {html.escape(result.method)}; {result.design_rows} design rows x "
        f"{result.replicates} replicate seed(s); parameters: "
        f"{html.escape(', '.join(result.parameters))}. Confidence intervals are bootstrap "
        "half-widths.</p>",
    ]
    for outcome in t["outcome"].unique(maintain_order=True).to_list():
        rows = t.filter(pl.col("outcome") == outcome)
        parts.append(f"<h2>{html.escape(outcome)}</h2>")
        parts.append(f"<img alt='{html.escape(outcome)}' "
                     f"src='data:image/png;base64,{_chart(outcome, rows, result.method)}'>")
        head = "".join(f"<th>{c}</th>" for c in ["parameter", *cols])
        body = "".join(
            "<tr><td>" + html.escape(r["parameter"]) + "</td>"
            + "".join(f"<td>{_fmt(r[c])}</td>" for c in cols) + "</tr>"
            for r in rows.iter_rows(named=True)
        )
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
    if result.skipped:
        items = "".join(f"<li>{html.escape(o)}: {html.escape(why)}</li>"
                        for o, why in result.skipped.items())
        parts.append(f"<h2>Outcomes not analysed</h2><ul>{items}</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_sensitivity(
    sweep: str | Path, out: str | Path, *, overwrite: bool = False, **kwargs
) -> Result:
    """Write ``out/sensitivity.parquet`` and ``out/sensitivity.html`` for a sweep folder.

    ``kwargs`` go to :func:`sensitivity`. An existing output is replaced only with
    ``overwrite``.
    """
    out = Path(out)
    for name in (POINTS, SUMMARY):
        if not (Path(sweep) / name).is_file():
            raise SensitivityError(f"{sweep}: no {name}; run progression sweep into it first")
    targets = [out / "sensitivity.parquet", out / "sensitivity.html"]
    if any(p.exists() for p in targets) and not overwrite:
        raise SensitivityError(f"{out} already holds sensitivity results; add --overwrite")
    result = sensitivity(sweep, **kwargs)
    page = render(result)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(targets[0],
                 lambda f: pq.write_table(result.table.to_arrow(), f, compression="zstd"))
    write_atomic(targets[1], page)
    return result
