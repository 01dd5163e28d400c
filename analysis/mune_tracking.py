"""How an observed MUNE tracks the true number of living motor units: a method-validation figure.

A clinic never knows the true count. The simulator does (``muscles.units_alive_fraction``,
latent truth), so a run can say how a MUNE method (``exam.mune_method``) errs: here, and only
here, the observed ``mune`` is set against the latent truth, to validate the *method*. No
calibration estimator (:mod:`analysis.estimators`) reads the truth.

:func:`tracking` gives, per muscle state, the ratio MUNE / true living units: its median (bias)
and its coefficient of variation (SD over mean of the ratio), over the muscle-visits with a
MUNE and at least one living unit. States: ``healthy`` (every unit alive), ``reinnervated``
(under 40% of units alive while the living units still hold 60% or more of the healthy fibres:
few, large units) and ``losing`` (the rest with some units alive).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from analysis.io import ENGINE, Run, frames, strings

#: (name, condition) of each muscle state, in report order.
STATES = ("healthy", "reinnervated", "losing")


def tracking(run: Run, healthy_units: Mapping[str, int]) -> pl.DataFrame:
    """MUNE over true living units by muscle state.

    Args:
        run: a run (its ``muscles`` table).
        healthy_units: motor units of each healthy muscle (the body map's, by muscle name);
            true living units = ``units_alive_fraction`` x this.

    Returns:
        One row per state: ``state``, ``n`` (muscle-visits), ``true_median`` (true living
        units), ``mune_median``, ``ratio_median`` (bias), ``ratio_q10``, ``ratio_q90`` and
        ``ratio_cv`` (SD over mean of the ratio).
    """
    units = pl.DataFrame(
        {"muscle": list(healthy_units), "_units": [float(v) for v in healthy_units.values()]}
    )
    m = (
        strings(frames(run)["muscles"].select("muscle", "mune", "units_alive_fraction",
                                              "fibres_fraction"), ["muscle"])
        .filter(pl.col("mune").is_not_null() & pl.col("mune").is_not_nan())
        .collect(engine=ENGINE)
        .join(units, on="muscle", how="inner")
        .with_columns((pl.col("units_alive_fraction") * pl.col("_units")).round().alias("true"))
        .filter(pl.col("true") >= 1)
        .with_columns(
            (pl.col("mune") / pl.col("true")).alias("ratio"),
            pl.when(pl.col("units_alive_fraction") >= 1.0)
            .then(pl.lit("healthy"))
            .when((pl.col("units_alive_fraction") < 0.4) & (pl.col("fibres_fraction") >= 0.6))
            .then(pl.lit("reinnervated"))
            .otherwise(pl.lit("losing"))
            .alias("state"),
        )
    )
    rows = []
    for state in STATES:
        g = m.filter(pl.col("state") == state)
        r = g["ratio"].to_numpy()
        rows.append(
            {
                "state": state,
                "n": len(r),
                "true_median": float(g["true"].median()) if len(r) else np.nan,
                "mune_median": float(g["mune"].median()) if len(r) else np.nan,
                "ratio_median": float(np.median(r)) if len(r) else np.nan,
                "ratio_q10": float(np.quantile(r, 0.1)) if len(r) else np.nan,
                "ratio_q90": float(np.quantile(r, 0.9)) if len(r) else np.nan,
                "ratio_cv": float(np.std(r, ddof=1) / np.mean(r)) if len(r) > 1 else np.nan,
            }
        )
    return pl.DataFrame(rows)


__all__ = ["STATES", "tracking"]
