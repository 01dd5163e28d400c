"""Calibration: the shipped scenarios against published figures, and fitting your own.

Two tools, both reading the simulation only through its tables (:mod:`analysis.targets`
computes every figure from them):

- :func:`validate_model` (``progression validate-model``) runs each scenario a set of targets
  needs into a Parquet dataset, computes each target with its confidence interval and writes
  the table as Markdown (``validation.md``).
- :func:`fit` estimates chosen scenario parameters (key paths such as
  ``disease.lmn.speed.median``) from target figures a researcher brings, by least squares on the
  simulated summary statistics. Every evaluation simulates the *same* patients with the same
  seed (common random numbers): a patient's draws are keyed by (seed, key path, patient id), so
  moving a parameter moves every patient's value smoothly and the objective is a smooth function
  of the parameters rather than a fresh Monte Carlo sample each time. Uncertainty comes from the
  Jacobian at the optimum (the targets' own uncertainty) and, optionally, from refits on
  independent cohorts (the simulation's Monte Carlo error).

Named runs: a scenario's name, or ``<scenario>@month0`` for the same cohort examined from month 0
(``visits.start = "degeneration"``), which the healthy-value and reinnervation targets read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis import targets as T

#: The repository (scenarios/ lives beside progression/).
ROOT = Path(__file__).resolve().parent.parent
#: Scenario folder used by :func:`validate_model` unless told otherwise.
SCENARIOS = ROOT / "scenarios"
#: Default published targets: ../shared/calibration/targets.toml beside the repository.
DEFAULT_TARGETS = ROOT.parent / "shared" / "calibration" / "targets.toml"
#: Patients per scenario for :func:`validate_model` by default: a few minutes on 2 cores.
DEFAULT_PATIENTS = 500
#: Overrides of a run variant (the part of a run name after ``@``).
VARIANTS: dict[str, dict[str, Any]] = {"month0": {"visits.start": "degeneration"}}
#: Extra overrides for runs that only need the patients table: the phenotype mix is drawn at
#: month 0, so one simulated month is enough to report it.
RUN_OVERRIDES: dict[str, dict[str, Any]] = {"mnd_population": {"time.duration_months": 1}}


class CalibrationError(Exception):
    """A calibration cannot start (missing targets or scenario file); one line for the user."""


def run_spec(name: str) -> tuple[str, dict[str, Any]]:
    """Scenario name and overrides of a named run (``als_natural_history@month0``)."""
    scenario, _, variant = name.partition("@")
    if variant and variant not in VARIANTS:
        raise CalibrationError(f"unknown run variant {variant!r} in {name!r}")
    over = dict(RUN_OVERRIDES.get(name, {}))
    over.update(VARIANTS.get(variant, {}))
    return scenario, over


# ---------------------------------------------------------------------------------------------
# Validation of the shipped scenarios


@dataclass
class Validation:
    """What :func:`validate_model` did.

    Attributes:
        results: one :class:`analysis.targets.Result` per target.
        runs: run name -> output folder.
        markdown: path of the Markdown table written.
        seconds: wall time.
    """

    results: list[T.Result]
    runs: dict[str, Path]
    markdown: Path
    seconds: float

    @property
    def failed(self) -> list[str]:
        return [r.target.id for r in self.results if r.status == "fail"]

    def text(self) -> str:
        return T.to_text(self.results)


def load_targets(path: str | Path | None) -> list[T.Target]:
    """Targets from ``path`` (default :data:`DEFAULT_TARGETS`), or a one-line error."""
    path = Path(path) if path is not None else DEFAULT_TARGETS
    if not path.is_file():
        raise CalibrationError(
            f"targets file {path} not found; pass --targets FILE (a targets.toml)"
        )
    try:
        return T.load_targets(path)
    except (ValueError, OSError) as e:
        raise CalibrationError(f"{path}: cannot read targets: {e}") from None


def validate_model(
    targets: str | Path | None = None,
    out: str | Path = "validation",
    patients: int = DEFAULT_PATIENTS,
    workers: int | None = None,
    seed: int | None = None,
    scenarios: str | Path = SCENARIOS,
    progress: bool = False,
) -> Validation:
    """Run the scenarios the targets need, compute every target and write ``validation.md``.

    Args:
        targets: a ``targets.toml`` (default :data:`DEFAULT_TARGETS`).
        out: output folder: ``runs/<run name>/`` (Parquet datasets) and ``validation.md``.
        patients: patients per scenario.
        workers: dask workers for each run (1 = in process; default: the usable cores).
        seed: override every scenario's seed (default: the scenario's own).
        scenarios: folder of the scenario files.
        progress: draw the runner's progress bar.

    Raises:
        CalibrationError: a missing targets or scenario file.
    """
    from analysis.io import open_run
    from progression.runner import run
    from progression.scenario import load_scenario

    start = time.monotonic()
    chosen = load_targets(targets)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folders: dict[str, Path] = {}
    for name in T.runs_needed(chosen):
        scenario_name, over = run_spec(name)
        path = Path(scenarios) / f"{scenario_name}.toml"
        if not path.is_file():
            raise CalibrationError(f"scenario {path} (needed by the targets) not found")
        scenario = load_scenario(path, patients=patients, seed=seed, overrides=over)
        folders[name] = out / "runs" / name.replace("@", "-")
        run(scenario, folders[name], workers=workers, overwrite=True, progress=progress)
    results = T.evaluate(chosen, {k: open_run(v) for k, v in folders.items()})
    header = (
        f"Simulated with {patients} patients per scenario"
        + (f", seed {seed}" if seed is not None else " (each scenario's own seed)")
        + f"; targets from `{Path(targets).name if targets else DEFAULT_TARGETS.name}`."
        + " 95% confidence intervals; `status` compares the simulated value with the range."
    )
    md = out / "validation.md"
    md.write_text(T.to_markdown(results, header))
    return Validation(results, folders, md, time.monotonic() - start)


# ---------------------------------------------------------------------------------------------
# Fitting parameters to targets


#: A statistic of named runs (the dicts of LazyFrames analysis functions take) -> a number.
Statistic = Callable[[Mapping[str, Any]], float]


@dataclass(frozen=True)
class FitTarget:
    """One figure to fit.

    Attributes:
        statistic: a target id of :data:`analysis.targets.ESTIMATORS` (its first component is
            used) or a function of the named runs returning a number.
        value: the published (observed) figure.
        sd: its uncertainty (standard error); the residual is ``(simulated - value) / sd``.
        runs: run names the statistic reads (for a function; ids know their own).
        name: label in reports.
    """

    statistic: str | Statistic
    value: float
    sd: float
    runs: tuple[str, ...] = ()
    name: str = ""

    @classmethod
    def from_target(cls, target: T.Target) -> FitTarget:
        """A published target of ``targets.toml`` (first component), its range read as a 95%
        interval: ``sd = (high - low) / 3.92`` (5% of the value without a range)."""
        value = target.value[0]
        if target.range is not None:
            sd = (target.range[1] - target.range[0]) / 3.92
        else:
            sd = max(abs(value) * 0.05, 1e-6)
        return cls(target.id, value, sd, name=target.id)

    @property
    def label(self) -> str:
        return self.name or (self.statistic if isinstance(self.statistic, str) else "statistic")

    def needs(self) -> tuple[str, ...]:
        if isinstance(self.statistic, str):
            if self.statistic not in T.ESTIMATORS:
                raise KeyError(f"unknown target id {self.statistic!r}")
            return T.NEEDS[self.statistic]
        return self.runs or ("main",)

    def compute(self, runs: Mapping[str, Any]) -> float:
        if isinstance(self.statistic, str):
            value = T.ESTIMATORS[self.statistic][0](runs).value[0]
            return math.nan if value is None else float(value)
        return float(self.statistic(runs))


def _as_target(t: FitTarget | tuple) -> FitTarget:
    if isinstance(t, FitTarget):
        return t
    statistic, value, *rest = t
    sd = float(rest[0]) if rest else max(abs(float(value)) * 0.05, 1e-6)
    return FitTarget(statistic, float(value), sd)


@dataclass
class FitResult:
    """Fitted parameters with their uncertainty.

    Attributes:
        names: the parameters' key paths.
        values: fitted values.
        se: standard errors from the Jacobian at the optimum, ``sqrt(diag((J'J)^-1))`` with
            residuals scaled by the targets' SDs (nan where not identifiable).
        bootstrap_sd: SD of the fitted values over refits on independent cohorts (other seeds),
            the Monte Carlo part of the uncertainty (None without ``bootstrap``).
        targets: the fitted figures.
        simulated: each figure simulated at the fitted values.
        cost: sum of squared scaled residuals at the optimum.
        evaluations: simulations run.
        success: whether the optimiser converged.
        message: the optimiser's message.
    """

    names: list[str]
    values: np.ndarray
    se: np.ndarray
    targets: list[FitTarget]
    simulated: np.ndarray
    cost: float
    evaluations: int
    success: bool
    message: str
    bootstrap_sd: np.ndarray | None = None
    bootstrap_values: np.ndarray | None = field(default=None, repr=False)

    def ci(self, level: float = 0.95) -> np.ndarray:
        """(parameters, 2) Wald interval from :attr:`se` (and :attr:`bootstrap_sd` if any,
        added in quadrature)."""
        from statistics import NormalDist

        z = NormalDist().inv_cdf(0.5 + level / 2)
        var = self.se**2
        if self.bootstrap_sd is not None:
            var = var + self.bootstrap_sd**2
        half = z * np.sqrt(var)
        return np.stack([self.values - half, self.values + half], axis=1)

    def summary(self) -> str:
        lines = ["parameter                                fitted      se    95% CI"]
        for name, v, s, (lo, hi) in zip(self.names, self.values, self.se, self.ci(),
                                        strict=True):
            lines.append(f"{name:<40} {v:8.4g} {s:8.2g}  [{lo:.4g}, {hi:.4g}]")
        lines.append("target                                 observed  simulated")
        for t, s in zip(self.targets, self.simulated, strict=True):
            lines.append(f"{t.label:<40} {t.value:8.4g} {s:9.4g}")
        lines.append(f"cost {self.cost:.4g} after {self.evaluations} simulations; {self.message}")
        return "\n".join(lines)


class _Objective:
    """Scaled residuals of the targets as a function of the parameters, one simulation each
    (memoised), always on the same patients and seed."""

    def __init__(self, scenario_path, names, bounds, targets, patients, seed, overrides):
        from progression.scenario import load_scenario

        self.scenario_path = Path(scenario_path)
        self.names = list(names)
        self.lo = np.array([b[0] for b in bounds], dtype=float)
        self.hi = np.array([b[1] for b in bounds], dtype=float)
        self.targets = targets
        self.patients = patients
        self.overrides = dict(overrides or {})
        base = load_scenario(self.scenario_path, overrides=self.overrides)
        self.seed = base.cohort.seed if seed is None else seed
        self.ids = np.arange(patients, dtype=np.int64)
        # One simulation per run variant ("" or "month0"): every scenario name the targets use
        # is answered by the fitted scenario.
        self.variants = sorted({r.partition("@")[2] for t in targets for r in t.needs()})
        for v in self.variants:
            if v and v not in VARIANTS:
                raise ValueError(f"unknown run variant {v!r}")
        self.cache: dict[tuple, np.ndarray] = {}
        self.evaluations = 0

    def to_params(self, u: np.ndarray) -> np.ndarray:
        return self.lo + np.clip(u, 0.0, 1.0) * (self.hi - self.lo)

    def tables(self, params: np.ndarray) -> dict[str, dict]:
        """Variant -> the tables of the fitted scenario at ``params`` (lazy frames)."""
        import polars as pl

        from progression.model import simulate_chunk
        from progression.scenario import load_scenario

        over = dict(self.overrides)
        over.update({n: float(v) for n, v in zip(self.names, params, strict=True)})
        out = {}
        for variant in self.variants:
            scenario = load_scenario(
                self.scenario_path, patients=self.patients, seed=self.seed,
                overrides={**over, **VARIANTS.get(variant, {})},
            )
            result = simulate_chunk(scenario, self.ids)
            out[variant] = {k: pl.from_arrow(v).lazy() for k, v in result.tables.items()}
            self.evaluations += 1
        return out

    def simulated(self, params: np.ndarray) -> np.ndarray:
        key = tuple(np.round(params, 12))
        if key not in self.cache:
            runs = _Runs(self.tables(params))
            self.cache[key] = np.array([t.compute(runs) for t in self.targets], dtype=float)
        return self.cache[key]

    def residuals(self, u: np.ndarray) -> np.ndarray:
        sim = self.simulated(self.to_params(u))
        obs = np.array([t.value for t in self.targets])
        sd = np.array([t.sd for t in self.targets])
        r = (sim - obs) / sd
        return np.where(np.isfinite(r), r, 1e3)


class _Runs(dict):
    """Named runs as the estimators look them up: the fitted scenario answers for every scenario
    name (``als_natural_history``, ``pma_natural_history``, ``main``, ...), its month-0 variant
    for every ``<name>@month0``."""

    def __missing__(self, key: str):
        variant = key.partition("@")[2]
        if variant != key and dict.__contains__(self, variant):
            return dict.__getitem__(self, variant)
        raise KeyError(key)


def fit(
    scenario_path: str | Path,
    params: Mapping[str, tuple[float, float]],
    targets: Sequence[FitTarget | tuple],
    patients: int = 200,
    seed: int | None = None,
    start: Mapping[str, float] | None = None,
    overrides: Mapping[str, Any] | None = None,
    step: float = 0.05,
    bootstrap: int = 0,
    max_evaluations: int = 60,
) -> FitResult:
    """Fit scenario parameters to target figures by least squares with common random numbers.

    Args:
        scenario_path: the scenario file.
        params: key path -> (low, high) bounds, e.g.
            ``{"disease.lmn.speed.median": (0.03, 0.15)}``.
        targets: :class:`FitTarget` or tuples ``(statistic, value[, sd])``: a target id of
            :data:`analysis.targets.ESTIMATORS` (``"als_survival_median_months"``) or a function
            of the named runs, the observed value and its standard error (default 5% of it).
        patients: patients simulated at every evaluation (the same ids each time).
        seed: the cohort seed (default the scenario's).
        start: starting values (default the middle of each range).
        overrides: further fixed key-path overrides (e.g. a smaller ``body.muscles``).
        step: finite-difference step for the Jacobian, as a fraction of each parameter's range
            (large enough to step over the discreteness of monthly steps and visits).
        bootstrap: refits on this many independent cohorts (seeds ``seed + 1, ...``) for the
            Monte Carlo part of the uncertainty.
        max_evaluations: simulations allowed per fit (per named run).

    Returns:
        A :class:`FitResult` (``summary()`` prints it).
    """
    from scipy.optimize import least_squares

    names = list(params)
    bounds = [tuple(map(float, params[n])) for n in names]
    for n, (lo, hi) in zip(names, bounds, strict=True):
        if not hi > lo:
            raise ValueError(f"{n}: bounds must be (low, high) with high > low, got {lo}, {hi}")
    fit_targets = [_as_target(t) for t in targets]
    if not fit_targets:
        raise ValueError("fit needs at least one target")

    def one_fit(cohort_seed: int | None) -> tuple[_Objective, Any]:
        obj = _Objective(scenario_path, names, bounds, fit_targets, patients, cohort_seed,
                         overrides)
        if start is None:
            u0 = np.full(len(names), 0.5)
        else:
            u0 = np.array([(start[n] - lo) / (hi - lo) for n, (lo, hi) in zip(names, bounds,
                                                                             strict=True)])

        def jac(u: np.ndarray) -> np.ndarray:
            cols = []
            for j in range(len(u)):
                e = np.zeros_like(u)
                e[j] = step
                up, dn = np.clip(u + e, 0, 1), np.clip(u - e, 0, 1)
                cols.append((obj.residuals(up) - obj.residuals(dn)) / (up[j] - dn[j]))
            return np.stack(cols, axis=1)

        res = least_squares(
            obj.residuals, np.clip(u0, 0, 1), jac=jac, bounds=(0.0, 1.0), method="trf",
            x_scale=1.0, max_nfev=max(2, max_evaluations // (2 * len(names) + 1)),
        )
        return obj, res

    obj, res = one_fit(seed)
    values = obj.to_params(res.x)
    scale = obj.hi - obj.lo
    jac_u = res.jac
    with np.errstate(invalid="ignore", divide="ignore"):
        try:
            cov_u = np.linalg.inv(jac_u.T @ jac_u)
            se = np.sqrt(np.clip(np.diag(cov_u), 0, None)) * scale
        except np.linalg.LinAlgError:
            se = np.full(len(names), np.nan)
    result = FitResult(
        names=names,
        values=values,
        se=se,
        targets=fit_targets,
        simulated=obj.simulated(values),
        cost=float(np.sum(res.fun**2)),
        evaluations=obj.evaluations,
        success=bool(res.success),
        message=str(res.message),
    )
    if bootstrap:
        base_seed = obj.seed
        refits = []
        for b in range(1, bootstrap + 1):
            o, r = one_fit(base_seed + b)
            refits.append(o.to_params(r.x))
            result.evaluations += o.evaluations
        result.bootstrap_values = np.array(refits)
        result.bootstrap_sd = result.bootstrap_values.std(axis=0, ddof=1) if bootstrap > 1 else (
            np.abs(result.bootstrap_values[0] - values)
        )
    return result


__all__ = [
    "DEFAULT_PATIENTS",
    "DEFAULT_TARGETS",
    "CalibrationError",
    "FitResult",
    "FitTarget",
    "Validation",
    "fit",
    "load_targets",
    "run_spec",
    "validate_model",
]
