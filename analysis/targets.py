"""Calibration targets: the published figures of ``targets.toml``, judged against the simulation.

Each ``[[target]]`` of ``validation/targets.toml`` is a figure clinicians have
measured, with the range that counts as consistent (:class:`Target`, :func:`load_targets`).
:func:`evaluate` computes each one from named runs with its estimator
(:data:`analysis.estimators.ESTIMATORS`, whose docstrings say how) and :func:`judge` compares it
with the range; :func:`to_text` and :func:`to_markdown` make the table of ``progression
validate-model``. Targets without a published range get a derived one (:data:`DERIVED_RANGES`,
stated in the report); ``kind = "input"`` targets (population mix, onset sites) are reported but
not judged.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from analysis.estimators import ESTIMATORS, NEEDS, Estimate
from analysis.io import Run, frames

#: Ranges for targets published without one, with the reasoning shown in the report.
DERIVED_RANGES: dict[str, tuple[tuple[tuple[float, float], ...], str]] = {
    "munix_healthy": (
        ((171, 211), (159, 199), (160, 200), (132, 172)),
        "published mean +- half the published SD (about 40): a small effect size",
    ),
    "fasciculation_rate_ratio": (
        ((5, 20), (20, 80)),
        "within a factor 2 of each published ratio (20 patients, 5 controls)",
    ),
    "preserved_regions_at_respiratory_onset": (
        ((0.37, 0.71), (0.32, 0.64), (0.05, 0.30)),
        "twice the Wilson 95% interval of the preserved share of the 2 other regions of each"
        " patient (26 of 100, 24 of 104, 4 of 64 sites), the sites counted as independent",
    ),
    "split_hand": (
        ((0.80, 0.95),),
        "share of ALS patients with hand involvement (APB CMAP below the healthy 5th percentile"
        " in either hand) whose APB/ADM ratio is below 0.6 at the visit first meeting ALS"
        " criteria: the 80-95% of the range note, from cohorts examined for a split hand; and,"
        " as checks, the share among all ALS patients there within the pooled 50% (95% CI"
        " 35-65%, 5 studies, n=339: split hand systematic review, Clin Neurophysiol 2022) and"
        " the ALS median ratio below the healthy one (pooled difference -0.38)",
    ),
}


# ---------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class Target:
    """One published figure from ``targets.toml``.

    Attributes:
        id: the target's id.
        scenario: the shipped scenario it refers to (``any``: any healthy cohort).
        quantity: what is measured, with its unit.
        value: the central published figure (a tuple for several numbers).
        range: (low, high) of what counts as consistent, or None.
        kind: ``emergent`` (the simulation must produce it) or ``input``.
        source: published sources.
        note: free text (``note`` and ``range_note`` of the file).
    """

    id: str
    scenario: str
    quantity: str
    value: tuple[float, ...]
    range: tuple[float, float] | None = None
    kind: str = "emergent"
    source: str = ""
    note: str = ""


def load_targets(path: str | Path) -> list[Target]:
    """The targets of a ``targets.toml`` file, in file order.

    Raises:
        OSError: the file cannot be read. ValueError: one line naming the file and what was
            expected (malformed TOML, no ``[[target]]`` tables, a target without ``id`` or
            ``value``, a value or range that is not numbers).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: malformed TOML: {e}") from None
    tables = data.get("target", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValueError(
            f"{path}: target: expected [[target]] tables with id and value, got {tables!r:.60}"
        )
    if not tables:
        raise ValueError(
            f"{path}: expected at least one [[target]] table with id and value; found none"
        )
    out = []
    for i, t in enumerate(tables):
        for key in ("id", "value"):
            if key not in t:
                raise ValueError(
                    f"{path}: target #{i + 1}: expected 'id' and 'value'; {key!r} is missing"
                )
        where = f"{path}: target #{i + 1} ({t['id']!r:.40})"
        value, rng = t["value"], t.get("range")
        if not all(map(_is_number, value if isinstance(value, list) else [value])):
            raise ValueError(
                f"{where}: value: expected a number or a list of numbers, got {value!r:.60}"
            )
        value = tuple(float(v) for v in value) if isinstance(value, list) else (float(value),)
        if rng is not None and not (
            isinstance(rng, list) and len(rng) == 2 and all(map(_is_number, rng))
        ):
            raise ValueError(f"{where}: range: expected [low, high], got {rng!r:.60}")
        note = "; ".join(str(t[k]) for k in ("note", "range_note") if k in t)
        out.append(
            Target(
                id=str(t["id"]),
                scenario=str(t.get("scenario", "any")),
                quantity=str(t.get("quantity", "")),
                value=value,
                range=(float(rng[0]), float(rng[1])) if rng else None,
                kind=str(t.get("kind", "emergent")),
                source=str(t.get("source", "")),
                note=note,
            )
        )
    return out


def _is_number(x: object) -> bool:
    """A TOML integer or float (not a boolean)."""
    return isinstance(x, int | float) and not isinstance(x, bool)


def runs_needed(targets: Sequence[Target]) -> list[str]:
    """The named runs that the targets read (unknown target ids read none)."""
    out: dict[str, None] = {}
    for t in targets:
        for name in NEEDS.get(t.id, ()):
            out[name] = None
    return list(out)


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class Result:
    """A target, its simulated estimate and the verdict.

    Attributes:
        target: the published target.
        estimate: the simulated figure (None if there is no estimator for the id).
        ranges: the range judged per component (published, or derived: see ``range_note``).
        range_note: how a derived range was set (empty for a published one).
        status: ``pass``, ``fail``, ``input`` (reported, not judged) or ``n/a``.
        seeds: the status at each cohort seed when judged at several (:func:`combine`).
    """

    target: Target
    estimate: Estimate | None
    ranges: tuple[tuple[float, float], ...] | None
    range_note: str
    status: str
    seeds: tuple[str, ...] = ()


def judge(target: Target, estimate: Estimate | None) -> Result:
    """Pass when every component's 95% interval lies inside its range (not merely touches it;
    the point value where an estimate has no interval) and every extra check holds."""
    if target.range is not None:
        ranges, note = (target.range,) * len(target.value), ""
    elif target.id in DERIVED_RANGES:
        ranges, note = DERIVED_RANGES[target.id]
    else:
        ranges, note = None, ""
    if estimate is None:
        return Result(target, None, ranges, note, "n/a")
    if target.kind == "input":
        return Result(target, estimate, ranges, note, "input")
    if ranges is None or any(v is None for v in estimate.value):
        return Result(target, estimate, ranges, note, "n/a")
    ok = all(
        lo <= (v if low is None else low) and (v if high is None else high) <= hi
        for v, low, high, (lo, hi) in zip(
            estimate.value, estimate.lower, estimate.upper, ranges, strict=False
        )
    )
    ok = ok and all(estimate.checks.values())
    return Result(target, estimate, ranges, note, "pass" if ok else "fail")


def combine(per_seed: Sequence[Sequence[Result]]) -> list[Result]:
    """One result per target from its results at several cohort seeds (same targets, same
    order): the first seed's estimate, ``pass`` only when every seed passes."""
    out = []
    for results in zip(*per_seed, strict=True):
        first = results[0]
        statuses = tuple(r.status for r in results)
        status = first.status
        if first.status in ("pass", "fail"):
            status = "pass" if all(st == "pass" for st in statuses) else "fail"
        out.append(Result(first.target, first.estimate, first.ranges, first.range_note, status,
                          statuses if len(results) > 1 else ()))
    return out


def evaluate(targets: Sequence[Target], runs: Mapping[str, Run]) -> list[Result]:
    """Estimate and judge each target whose runs are available (others: ``n/a``)."""
    frames_of = {k: frames(v) for k, v in runs.items()}
    out = []
    for t in targets:
        fn, needs = ESTIMATORS.get(t.id, (None, ()))
        if fn is None or any(n not in frames_of for n in needs):
            out.append(judge(t, None))
            continue
        out.append(judge(t, fn(frames_of)))
    return out


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def format_value(values: Sequence[float | None]) -> str:
    return ", ".join(_fmt(v) for v in values)


def rows(results: Sequence[Result]) -> list[dict[str, str]]:
    """One dict of display strings per result (target, published, range, simulated, ...)."""
    out = []
    for r in results:
        t, e = r.target, r.estimate
        if r.ranges is None:
            rng = "-"
        else:
            rng = "; ".join(f"{_fmt(lo)}-{_fmt(hi)}" for lo, hi in r.ranges)
            if r.range_note:
                rng += " (derived)"
        if e is None:
            sim = ci = "-"
        else:
            sim = format_value(e.value)
            ci = "; ".join(
                f"{_fmt(lo)}-{_fmt(hi)}" if lo is not None and hi is not None else "-"
                for lo, hi in zip(e.lower, e.upper, strict=False)
            )
        out.append(
            {
                "target": t.id,
                "published": format_value(t.value),
                "range": rng,
                "simulated": sim,
                "ci95": ci,
                "n": "-" if e is None else str(e.n),
                "status": r.status + (
                    f" ({sum(st == 'pass' for st in r.seeds)}/{len(r.seeds)} seeds)"
                    if r.seeds and r.status in ("pass", "fail") else ""
                ),
                "detail": "" if e is None else "; ".join(
                    [e.detail, *[f"{k}: {'yes' if v else 'no'}" for k, v in e.checks.items()]]
                ).strip("; "),
            }
        )
    return out


def to_text(results: Sequence[Result]) -> str:
    """A plain-text table for the terminal."""
    table = rows(results)
    cols = ["target", "published", "range", "simulated", "ci95", "n", "status"]
    width = {c: max(len(c), *(len(r[c]) for r in table)) for c in cols}
    line = "  ".join(c.ljust(width[c]) for c in cols)
    out = [line, "  ".join("-" * width[c] for c in cols)]
    out += ["  ".join(r[c].ljust(width[c]) for c in cols) for r in table]
    return "\n".join(out)


def to_markdown(results: Sequence[Result], header: str = "") -> str:
    """A Markdown table (plus the derived ranges' reasoning and the quantities)."""
    table = rows(results)
    lines = [header.rstrip(), ""] if header else []
    lines += [
        "| target | quantity | published | range | simulated | 95% CI | n | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r, res in zip(table, results, strict=True):
        q = res.target.quantity.replace("|", "/")
        lines.append(
            f"| `{r['target']}` | {q} | {r['published']} | {r['range']} | {r['simulated']} "
            f"| {r['ci95']} | {r['n']} | {r['status']} |"
        )
    notes = [
        f"- `{res.target.id}`: {r['detail']}" for r, res in zip(table, results, strict=True)
        if r["detail"]
    ]
    derived = [f"- `{res.target.id}`: {res.range_note}" for res in results if res.range_note]
    if derived:
        lines += ["", "Derived ranges (the target gives none):", "", *derived]
    if notes:
        lines += ["", "Details:", "", *notes]
    return "\n".join(lines) + "\n"


__all__ = [
    "DERIVED_RANGES",
    "ESTIMATORS",
    "NEEDS",
    "Estimate",
    "Result",
    "Target",
    "combine",
    "evaluate",
    "judge",
    "load_targets",
    "runs_needed",
    "to_markdown",
    "to_text",
]
