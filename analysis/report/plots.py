"""Matplotlib helpers shared by the report's figures, and the colours of what they show."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

#: Colours of the latent phenotypes and of the diagnostic states (colour-blind safe, Okabe-Ito).
PHENOTYPE_COLOURS = {"ALS": "#0072B2", "PMA": "#E69F00", "PLS": "#009E73"}
STATE_COLOURS = {
    "unseen": "#e6e6e6",
    "none": "#b3b3b3",
    "PMA": "#E69F00",
    "PLS": "#009E73",
    "ALS": "#0072B2",
    "dead": "#4d4d4d",
}
SITE_COLOURS = {"bulbar": "#CC79A7", "limb": "#0072B2", "trunk": "#D55E00", "other": "#999999"}
MEASURE_COLOURS = {
    "cmap_mv": "#0072B2",
    "mune": "#D55E00",
    "munix": "#CC79A7",
    "strength_fraction": "#009E73",
}


def colour(name: str, palette: dict[str, str], i: int = 0) -> str:
    """``name``'s colour in ``palette``, else the ``i``-th of a few spare ones."""
    fallback = ("#56B4E9", "#F0E442", "#999999", "#000000")
    return palette.get(name, fallback[i % len(fallback)])


def new_figure(width: float, height: float, rows: int = 1, cols: int = 1):
    """A figure and its grid of axes (always 2-D), without top and right spines."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(alpha=0.25, linewidth=0.6)
    return fig, axes


def legend(ax, **kw) -> None:
    """A legend, if anything on ``ax`` has a label."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def median_band(
    ax, frame: pl.DataFrame, prefix: str, colour: str, label: str,
    x: str = "months_since_onset", alpha: float = 0.15,
) -> None:
    """Plot ``<prefix>median`` against ``x`` with its interquartile band
    (``<prefix>q25`` to ``<prefix>q75``)."""
    xs = frame[x].to_numpy()
    ax.fill_between(xs, frame[f"{prefix}q25"].to_numpy(), frame[f"{prefix}q75"].to_numpy(),
                    color=colour, alpha=alpha, linewidth=0)
    ax.plot(xs, frame[f"{prefix}median"].to_numpy(), color=colour, label=label, linewidth=1.8)


def phenotype_bands(
    ax, frame: pl.DataFrame, phenotypes: Sequence[str], prefix: str = "", alpha: float = 0.15,
) -> None:
    """One :func:`median_band` over months since onset for each of ``phenotypes`` found in
    ``frame``, in its colour (the ``i``-th spare colour for the ``i``-th phenotype if none)."""
    for i, ph in enumerate(phenotypes):
        g = frame.filter(pl.col("phenotype") == ph).sort("months_since_onset")
        if len(g):
            median_band(ax, g, prefix, colour(ph, PHENOTYPE_COLOURS, i), ph, alpha=alpha)


def sorted_groups(values: Sequence[str], order: Sequence[str]) -> list[str]:
    """``values`` in the order of ``order``; any others after them, alphabetically."""
    rank = {v: i for i, v in enumerate(order)}
    return sorted(values, key=lambda v: (rank.get(v, len(rank)), v))
