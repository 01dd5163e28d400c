"""Sample size read off a simulated power curve (:func:`analysis.trials.simulate_power`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import polars as pl

_N = NormalDist()


def _n_at_power(n: np.ndarray, power: np.ndarray, target: float, replicates: int):
    """The n per arm at which the simulated power curve ``power(n)`` first reaches ``target``,
    by linear interpolation of ``probit(power)`` against ``sqrt(n)`` (a straight line for a Wald
    test); ``(n, how)``."""
    eps = 0.5 / replicates
    q = np.array([_N.inv_cdf(min(max(x, eps), 1 - eps)) for x in power])
    x = np.sqrt(n.astype(float))
    qt = _N.inv_cdf(target)
    above = np.nonzero(power >= target)[0]
    if len(above) and above[0] > 0:
        i = above[0]
        if q[i] == q[i - 1]:
            return float(n[i]), "interpolated"
        s = x[i - 1] + (qt - q[i - 1]) * (x[i] - x[i - 1]) / (q[i] - q[i - 1])
        return float(s * s), "interpolated"
    if len(above):
        return float(n[0]), "at or below the smallest n"
    return math.nan, "above the largest n"


def sample_size(power: pl.DataFrame, targets: Sequence[float] = (0.8, 0.9)) -> pl.DataFrame:
    """Per endpoint and treatment arm: n per arm for each target power, interpolated on the
    simulated curve, with an interval from the curves of the power's 95% limits.

    Returns:
        ``endpoint, arm, n80, n80_low, n80_high, n80_how, n90, ...``, rounded up to whole
        patients (null when the target is not reached within the simulated sizes), then
        ``type_I_error`` (null trials' rejections pooled over all sizes; null without null
        trials), ``true_effect`` and ``unit``.
    """
    rows = []
    null = power.filter(pl.col("comparison") == "null")
    type1 = {
        e: float(g["rejections"].sum() / g["replicates"].sum())
        for (e,), g in null.group_by(["endpoint"])
    }
    trt = power.filter(pl.col("comparison") == "treatment").sort("n_per_arm")
    for (endpoint, arm), g in trt.group_by(["endpoint", "arm"], maintain_order=True):
        n = g["n_per_arm"].to_numpy()
        reps = int(g["replicates"][0])
        row: dict = {"endpoint": endpoint, "arm": arm}
        for target in targets:
            tag = f"n{round(target * 100)}"
            mid, how = _n_at_power(n, g["power"].to_numpy(), target, reps)
            low, _ = _n_at_power(n, g["ci_high"].to_numpy(), target, reps)
            high, _ = _n_at_power(n, g["ci_low"].to_numpy(), target, reps)
            row[tag] = _ceil(mid)
            row[f"{tag}_low"] = _ceil(low)
            row[f"{tag}_high"] = _ceil(high)
            row[f"{tag}_how"] = how
        row["type_I_error"] = type1.get(endpoint)
        row["true_effect"] = float(g["true_effect"][0])
        row["unit"] = g["unit"][0]
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def _ceil(x: float) -> int | None:
    return None if not math.isfinite(x) else int(math.ceil(x - 1e-9))


__all__ = ["sample_size"]
