"""One patient's motor units over time: the figure of a replay (``progression replay``) and of the
explorer's chosen patient.

:func:`read_replay` reads a replay folder (``patients.parquet``, ``visits.parquet``,
``muscles.parquet``, ``events.parquet``, ``units.parquet``, ``tracts.parquet``) as polars
DataFrames; :func:`muscle_figure` draws one muscle of it, :func:`write_figures` one PNG per
muscle. The figure has three panels on one time axis:

1. every motor unit of the pool (ranked by healthy size, at most ``max_units`` of them, evenly
   spaced ranks) as a mark whose area is its fibres, coloured by its size over its healthy size
   (reinnervation: a unit that adopted orphans grows and warms), dead units as grey crosses;
2. what the clinic measures against the truth: CMAP (mV) and MUNE at the visits, and the true
   number of living units every month;
3. the diagnosis at each visit as a coloured band, with symptom onset, first visit and death.

This module reads Parquet (or frames with the same columns) and never imports the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from analysis.io import write_atomic
from analysis.report.plots import STATE_COLOURS

#: The tables of a replay folder, each ``<name>.parquet`` (``scans`` too where recorded).
REPLAY_TABLES = ("patients", "visits", "muscles", "events", "units", "tracts")

Replay = Mapping[str, pl.DataFrame]


def read_replay(folder: str | Path) -> dict[str, pl.DataFrame]:
    """The tables of a replay folder, category columns as plain strings.

    Raises:
        FileNotFoundError: a table of :data:`REPLAY_TABLES` is missing.
    """
    folder = Path(folder)
    out = {}
    for name in (*REPLAY_TABLES, "scans"):
        path = folder / f"{name}.parquet"
        if not path.is_file():
            if name == "scans":
                continue
            raise FileNotFoundError(f"{folder}: no {name}.parquet (not a replay folder?)")
        frame = pl.read_parquet(path)
        out[name] = frame.with_columns(
            pl.col(c).cast(pl.String) for c, t in frame.schema.items()
            if t in (pl.Categorical, pl.Enum) or isinstance(t, pl.Categorical | pl.Enum)
        )
    return out


def muscles_of(replay: Replay) -> list[tuple[str, str]]:
    """(muscle, side) of every pool in the unit history, in body order."""
    pools = replay["units"].select("muscle", "side").unique(maintain_order=True)
    return list(zip(pools["muscle"].to_list(), pools["side"].to_list(), strict=True))


def muscle_figure(
    replay: Replay, muscle: str, side: str, *, max_units: int = 80, max_months: int = 60,
    width: float = 9.0, height: float = 7.5,
):
    """The figure of one muscle of one patient (see the module docstring).

    Args:
        replay: the tables of one patient (:func:`read_replay`, or the same columns built
            from a live model): ``units``, ``muscles``, ``visits``, ``events``, ``patients``.
        muscle, side: the pool drawn (e.g. ``"APB"``, ``"left"``).
        max_units: most units drawn (evenly spaced ranks; the count panel counts all).
        max_months: most months drawn in the unit panel (evenly spaced; every month up to it).

    Returns:
        A ``matplotlib.figure.Figure`` (no pyplot state; save it with ``savefig``).
    """
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    units = replay["units"].filter((pl.col("muscle") == muscle) & (pl.col("side") == side))
    if units.is_empty():
        raise KeyError(f"no unit history of {muscle} {side}")
    months = np.unique(units["month"].to_numpy())
    shown_months = months[_spread(len(months), max_months)]
    ranks = np.unique(units["unit"].to_numpy())
    shown_units = ranks[_spread(len(ranks), max_units)]
    grid = units.filter(pl.col("month").is_in(shown_months.tolist())
                        & pl.col("unit").is_in(shown_units.tolist()))
    month = grid["month"].to_numpy()
    y = np.searchsorted(shown_units, grid["unit"].to_numpy())
    fibres = grid["fibres"].to_numpy().astype(float)
    healthy = grid["healthy_fibres"].to_numpy().astype(float)
    alive = grid["alive"].to_numpy()

    fig = Figure(figsize=(width, height), layout="constrained")
    ax_u, ax_m, ax_d = fig.subplots(3, 1, sharex=True, height_ratios=[3.2, 1.6, 0.55])
    for ax in (ax_u, ax_m, ax_d):
        ax.spines[["top", "right"]].set_visible(False)

    # 1. the pool: marks sized by fibres, coloured by enlargement; the dead greyed.
    biggest = float(units.filter(pl.col("month") == months[0])["fibres"].max())
    area = 2400.0 / len(shown_units) * fibres / biggest  # a healthy largest unit: one row
    enlarged = np.where(healthy > 0, fibres / healthy, 1.0)
    top = max(2.0, float(np.max(enlarged[alive], initial=1.0)))
    norm = Normalize(1.0, top)
    ax_u.scatter(month[~alive], y[~alive], s=6, marker="x", c="#b0b0b0", linewidths=0.6)
    sc = ax_u.scatter(month[alive], y[alive], s=np.maximum(area[alive], 0.6), c=enlarged[alive],
                      cmap="plasma", norm=norm, linewidths=0, alpha=0.85)
    bar = fig.colorbar(sc, ax=ax_u, pad=0.01, fraction=0.04)
    bar.set_label("fibres / healthy size")
    every = "" if len(shown_units) == len(ranks) else f" ({len(shown_units)} of {len(ranks)})"
    ax_u.set_ylabel(f"unit, smallest to largest{every}")
    ax_u.set_ylim(-1, len(shown_units) + 1)
    ax_u.set_yticks([])
    patient = replay["patients"]
    pid = int(patient["patient_id"][0]) if not patient.is_empty() else None
    phen = str(patient["phenotype"][0]) if not patient.is_empty() else "?"
    arm = str(patient["arm"][0]) if "arm" in patient.columns and not patient.is_empty() else ""
    ax_u.set_title(f"patient {pid}{f' ({arm})' if arm else ''}: {muscle} {side}, latent {phen}\n"
                   "mark area = fibres, colour = enlargement by reinnervation, grey x = dead",
                   fontsize=10)

    # 2. CMAP and MUNE at visits against the true count.
    count = units.group_by("month").agg(pl.col("alive").sum()).sort("month")
    ax_m.plot(count["month"], count["alive"], color="#333333", linewidth=1.4,
              label="true units alive")
    seen = replay["muscles"].filter((pl.col("muscle") == muscle) & (pl.col("side") == side))
    if not seen.is_empty():
        mune = seen.filter(pl.col("mune").is_not_nan() & pl.col("mune").is_not_null())
        ax_m.plot(mune["month"], mune["mune"], "o", color="#D55E00", markersize=3.5,
                  label="MUNE")
        ax_c = ax_m.twinx()
        ax_c.spines[["top"]].set_visible(False)
        ax_c.plot(seen["month"], seen["cmap_mv"], "s-", color="#0072B2", markersize=3,
                  linewidth=0.9, label="CMAP (mV)")
        ax_c.set_ylabel("CMAP (mV)", color="#0072B2")
        ax_c.set_ylim(0, max(1e-3, float(seen["cmap_mv"].max()) * 1.15))
        ax_c.legend(loc="upper right", fontsize=8, frameon=False)
    ax_m.set_ylabel("motor units")
    ax_m.set_ylim(0, max(1, int(len(ranks) * 1.4)))
    ax_m.legend(loc="upper left", fontsize=8, frameon=False, ncols=2)
    ax_m.grid(alpha=0.25, linewidth=0.6)

    # 3. the diagnosis at each visit, and the events that frame it.
    death = replay["events"].filter(pl.col("event") == "death")["month"]
    _timeline(ax_d, replay, float(death[0]) if len(death) else float(months[-1]))
    ax_d.set_xlabel("months since the start of degeneration")
    for ax in (ax_u, ax_m, ax_d):
        _events(ax, replay, label=ax is ax_d)
    ax_d.set_xlim(float(months[0]) - 1, float(months[-1]) + 1)
    fig.get_layout_engine().set(h_pad=0.02)
    fig.patch.set_facecolor("white")
    return fig


def write_figures(
    replay: Replay | str | Path, out: str | Path,
    muscles: Sequence[tuple[str, str]] | None = None, dpi: int = 110,
) -> list[Path]:
    """One PNG per muscle, ``<out>/<muscle>_<side>.png`` (all pools unless ``muscles``).

    Returns:
        The files written.
    """
    if isinstance(replay, (str, Path)):
        replay = read_replay(replay)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for muscle, side in muscles_of(replay) if muscles is None else muscles:
        fig = muscle_figure(replay, muscle, side)
        path = out / f"{muscle}_{side}.png"
        write_atomic(path, lambda f, fig=fig: fig.savefig(f, format="png", dpi=dpi))
        paths.append(path)
    return paths


def _spread(n: int, most: int) -> np.ndarray:
    """At most ``most`` evenly spaced indices of ``range(n)``, first and last included."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, most)).astype(int))


def _timeline(ax, replay: Replay, end: float) -> None:
    """The diagnosis at each visit, held until the next visit (or ``end``)."""
    visits = replay["visits"].sort("month")
    months = visits["month"].to_numpy()
    stops = np.append(months[1:], end)[: len(months)]
    for start, stop, dx in zip(months, stops, visits["diagnosis"].to_list(), strict=True):
        ax.axvspan(start, max(stop, start + 0.2), ymin=0.15, ymax=0.85,
                   color=STATE_COLOURS.get(dx, "#999999"), linewidth=0)
    for dx in ("none", "PMA", "PLS", "ALS"):
        if dx in visits["diagnosis"].to_list():
            ax.bar(0, 0, color=STATE_COLOURS[dx], label=f"diagnosis {dx}")
    ax.set_yticks([])
    ax.set_ylabel("clinic", rotation=0, ha="right", va="center")
    ax.spines[["left"]].set_visible(False)


def _events(ax, replay: Replay, label: bool) -> None:
    """Vertical lines at symptom onset, first visit and death."""
    ev = replay["events"]
    marks = []
    onset = ev.filter(pl.col("event") == "region_onset")
    if not onset.is_empty():
        first = onset.sort("month").row(0, named=True)
        marks.append((first["month"], f"symptoms ({first['region']})", "#009E73", "--"))
    for kind, text, colour, style in (("first_visit", "first visit", "#56B4E9", ":"),
                                      ("enrolment", "enrolment", "#CC79A7", "-."),
                                      ("death", "death", "#000000", "-")):
        hit = ev.filter(pl.col("event") == kind)
        if not hit.is_empty():
            detail = hit["detail"][0] if kind in ("death", "enrolment") else None
            marks.append((hit["month"][0], f"{text} ({detail})" if detail else text, colour,
                          style))
    for month, text, colour, style in marks:
        ax.axvline(month, color=colour, linestyle=style, linewidth=1.0,
                   label=text if label else None)
    if label:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.9), fontsize=8, frameon=False,
                  ncols=4)
