"""Calibration: the shipped scenarios against published figures, and fitting your own.

Two tools, both reading the simulation only through its tables (:mod:`analysis.estimators`
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
  independent cohorts (the simulation's Monte Carlo error). By default each batch of
  evaluations (a finite-difference Jacobian: 2 per parameter) runs as one sweep
  (:mod:`progression.studies.sweep`) on the runner, in parallel over local workers or a dask
  cluster.

Named runs: a scenario's name, or ``<scenario>@month0`` for the same cohort examined from month 0
(``visits.start = "degeneration"``), which the healthy-value and reinnervation targets read.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis import estimators as E
from analysis import targets as T


def _repository() -> Path:
    """The repository holding ``scenarios/`` and ``validation/``: the one this code runs from
    (an editable install or a clone), else the current folder (an installed copy used from a
    clone, as the README's quick start does)."""
    here = Path(__file__).resolve().parents[2]  # this file is progression/studies/
    if (here / "validation" / "targets.toml").is_file():
        return here
    return Path.cwd()


#: The repository (see :func:`_repository`).
ROOT = _repository()
#: Scenario folder used by :func:`validate_model` unless told otherwise.
SCENARIOS = ROOT / "scenarios"
#: Default published targets: the project's own ``validation/targets.toml`` (sources kept).
DEFAULT_TARGETS = ROOT / "validation" / "targets.toml"
#: Patients per scenario for :func:`validate_model` by default: a few minutes on 2 cores.
DEFAULT_PATIENTS = 500
#: Overrides of a run variant (the part of a run name after ``@``).
VARIANTS: dict[str, dict[str, Any]] = {"month0": {"visits.start": "degeneration"}}
#: Extra overrides of named runs: the MND population is followed 10 years (its targets read
#: the phenotype mix, drawn at month 0, and the first diagnoses and conversions within 61
#: months of them), not its 20.
RUN_OVERRIDES: dict[str, dict[str, Any]] = {"mnd_population": {"time.duration_months": 120}}


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


def validate_model(
    targets: str | Path | None = None,
    out: str | Path = "runs/validation",
    patients: int = DEFAULT_PATIENTS,
    workers: int | None = None,
    seed: int | None = None,
    scenarios: str | Path = SCENARIOS,
    progress: bool = False,
    chunk_size: int | None = None,
    scheduler: str | None = None,
    seeds: int = 1,
) -> Validation:
    """Run the scenarios the targets need, compute every target and write ``validation.md``.

    A target passes when its 95% interval lies inside the published range, at every one of
    ``seeds`` cohort seeds (the scenario's own, or ``seed``, then the next ones).

    Args:
        targets: a ``targets.toml`` (default :data:`DEFAULT_TARGETS`).
        out: output folder: ``runs/<run name>/`` (Parquet datasets) and ``validation.md``.
        patients: patients per scenario.
        workers: dask workers for each run (1 = in process; default: the usable cores).
        seed: override every scenario's seed (default: the scenario's own).
        chunk_size, scheduler: as :func:`progression.runner.run`.
        seeds: cohort seeds to judge each target at.
        scenarios: folder of the scenario files.
        progress: draw the runner's progress bar.

    Raises:
        CalibrationError: a missing targets or scenario file.
    """
    from analysis.io import open_run
    from progression.runner import run
    from progression.scenario import load_scenario

    start = time.monotonic()
    targets_path = Path(targets) if targets is not None else DEFAULT_TARGETS
    try:
        chosen = T.load_targets(targets_path)
    except FileNotFoundError:
        raise CalibrationError(
            f"targets file {targets_path} not found; pass --targets FILE (a targets.toml)"
        ) from None
    except OSError as e:
        raise CalibrationError(f"{targets_path}: cannot read targets: {e.strerror or e}") from None
    except ValueError as e:  # one line that names the file
        raise CalibrationError(str(e)) from None
    if seeds < 1:
        raise CalibrationError(f"seeds must be at least 1, got {seeds}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folders: dict[str, Path] = {}
    per_seed = []
    for k in range(seeds):
        runs: dict[str, Path] = {}
        for name in T.runs_needed(chosen):
            scenario_name, over = run_spec(name)
            path = Path(scenarios) / f"{scenario_name}.toml"
            if not path.is_file():
                raise CalibrationError(f"scenario {path} (needed by the targets) not found")
            scenario = load_scenario(path, patients=patients, seed=seed, overrides=over)
            if k:  # the k-th seed after the first
                scenario = load_scenario(path, patients=patients,
                                         seed=scenario.cohort.seed + k, overrides=over)
            folder = name.replace("@", "-") + (f"-seed{scenario.cohort.seed}" if seeds > 1 else "")
            runs[name] = folders[folder] = out / "runs" / folder
            run(scenario, runs[name], workers=workers, chunk_size=chunk_size,
                scheduler=scheduler, overwrite=True, progress=progress)
        per_seed.append(T.evaluate(chosen, {n: open_run(f) for n, f in runs.items()}))
    results = T.combine(per_seed)
    header = (
        f"Simulated with {patients} patients per scenario"
        + (f", seed {seed}" if seed is not None else " (each scenario's own seed)")
        + (f" and the {seeds - 1} seeds after it" if seeds > 1 else "")
        + f"; targets from `{targets_path.name}`."
        + " 95% confidence intervals (of the first seed); a target passes when the interval lies"
        + " inside the range" + (" at every seed" if seeds > 1 else "") + "."
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
        statistic: a target id of :data:`analysis.estimators.ESTIMATORS` (its first component is
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
            if self.statistic not in E.ESTIMATORS:
                raise KeyError(f"unknown target id {self.statistic!r}")
            return E.NEEDS[self.statistic]
        return self.runs or ("main",)

    def compute(self, runs: Mapping[str, Any]) -> float:
        if isinstance(self.statistic, str):
            value = E.ESTIMATORS[self.statistic][0](runs).value[0]
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


@dataclass
class _Sweeps:
    """Where and how the evaluation batches of a fit run as sweeps.

    Attributes:
        root: batch b goes to ``root/eval-<bbb>/``.
        workers: 1 (in process) or None (on ``scheduler``).
        scheduler: dask scheduler address.
        threads: worker threads (one chunk each per batch by default).
        memory: bytes per worker thread (None: available memory / threads).
        chunk_size: patients per chunk (None: from ``threads`` and ``memory``).
        progress: draw the runner's progress bar.
        batches: batches run so far.
    """

    root: Path
    workers: int | None
    scheduler: str | None
    threads: int | None
    memory: float | None = None
    chunk_size: int | None = None
    progress: bool = False
    batches: int = 0

    def run(self, plan: Any) -> Path:
        """Run ``plan`` (a :class:`progression.studies.sweep.SweepPlan`) into the next batch folder.

        The default chunk size aims at one chunk per worker (at most one point's cohort):
        small chunks cost time per patient, and a batch has few points.
        """
        from progression.chunking import default_chunk_size
        from progression.studies.sweep import run_sweep

        folder = self.root / f"eval-{self.batches:03d}"
        self.batches += 1
        patients = plan.base.cohort.patients
        size = self.chunk_size or min(patients, default_chunk_size(
            plan.base, workers=self.threads, memory_per_worker=self.memory,
            patients=patients * len(plan.points), chunks_per_worker=1,
        ))
        run_sweep(plan, folder, workers=self.workers, scheduler=self.scheduler, chunk_size=size,
                  progress=self.progress, yes=True)
        return folder


@contextmanager
def _open_sweeps(
    out: str | Path | None,
    workers: int | None,
    scheduler: str | None,
    chunk_size: int | None,
    progress: bool,
) -> Iterator[_Sweeps]:
    """The batches' folder (``out``, or a temporary one removed on exit) and where they run:
    in this process (``workers=1``), on ``scheduler``, or on a local cluster of ``workers``
    (default: the usable cores) started once for the whole fit."""
    from progression import storage
    from progression.chunking import usable_cores
    from progression.cluster import cluster_resources, local_cluster

    if out is not None and not storage.is_empty_dir(Path(out)):
        raise ValueError(f"{out} is not empty: fit writes its batches into a new folder")
    with ExitStack() as stack:
        root = Path(out) if out is not None else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="progression-fit-")))
        if workers == 1 and scheduler is None:
            yield _Sweeps(root, workers=1, scheduler=None, threads=1, chunk_size=chunk_size,
                          progress=progress)
            return
        if scheduler is None:
            cluster = stack.enter_context(local_cluster(workers or usable_cores()))
            scheduler = cluster.scheduler_address
        threads, memory = cluster_resources(scheduler)
        yield _Sweeps(root, workers=None, scheduler=scheduler, threads=threads, memory=memory,
                      chunk_size=chunk_size, progress=progress)


class _Objective:
    """Scaled residuals of the targets as a function of the parameters, one simulation per
    parameter vector and run variant (memoised), always on the same patients and seed.

    Vectors not yet simulated are evaluated in batches: in this process (``sweeps`` None) or as
    one sweep per batch (:func:`progression.studies.sweep.plan_points`, one point per vector and
    variant).
    """

    def __init__(self, scenario_path, names, bounds, targets, patients, seed, overrides,
                 sweeps: _Sweeps | None = None):
        from progression.scenario import load_scenario

        self.scenario_path = Path(scenario_path)
        self.names = list(names)
        self.lo = np.array([b[0] for b in bounds], dtype=float)
        self.hi = np.array([b[1] for b in bounds], dtype=float)
        self.targets = targets
        self.patients = patients
        self.overrides = dict(overrides or {})
        self.sweeps = sweeps
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

    def values(self, params: np.ndarray) -> dict[str, float]:
        """Key path -> value of a parameter vector."""
        return {n: float(v) for n, v in zip(self.names, params, strict=True)}

    def tables(self, batch: Sequence[np.ndarray]) -> list[dict[str, dict]]:
        """For each parameter vector of ``batch``: variant -> the fitted scenario's tables at
        it (lazy frames)."""
        self.evaluations += len(batch) * len(self.variants)
        return self._inline(batch) if self.sweeps is None else self._sweep(batch)

    def _inline(self, batch: Sequence[np.ndarray]) -> list[dict[str, dict]]:
        """:meth:`tables` simulated in this process, one vector and variant after another."""
        import polars as pl

        from progression.model import simulate_chunk
        from progression.scenario import load_scenario

        out = []
        for params in batch:
            runs = {}
            for variant in self.variants:
                scenario = load_scenario(
                    self.scenario_path, patients=self.patients, seed=self.seed,
                    overrides={**self.overrides, **self.values(params),
                               **VARIANTS.get(variant, {})},
                )
                result = simulate_chunk(scenario, self.ids)
                runs[variant] = {k: pl.from_arrow(v).lazy() for k, v in result.tables.items()}
            out.append(runs)
        return out

    def _sweep(self, batch: Sequence[np.ndarray]) -> list[dict[str, dict]]:
        """:meth:`tables` as one sweep: point ``i * len(variants) + j`` is vector i, variant j."""
        from analysis.outcomes import point_frames
        from progression.studies.sweep import plan_points

        plan = plan_points(
            self.scenario_path, [self.values(p) for p in batch],
            variants=[VARIANTS.get(v, {}) for v in self.variants],
            patients=self.patients, seed=self.seed, overrides=self.overrides,
        )
        folder = self.sweeps.run(plan)
        n = len(self.variants)
        return [{v: point_frames(folder, i * n + j) for j, v in enumerate(self.variants)}
                for i in range(len(batch))]

    def simulated_many(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The simulated targets at each parameter vector; the new ones simulated as one batch."""
        keys = [tuple(np.round(p, 12)) for p in batch]
        todo = {k: p for k, p in zip(keys, batch, strict=True) if k not in self.cache}
        if todo:
            for key, runs in zip(todo, self.tables(list(todo.values())), strict=True):
                named = _Runs(runs)
                self.cache[key] = np.array([t.compute(named) for t in self.targets], dtype=float)
        return [self.cache[k] for k in keys]

    def simulated(self, params: np.ndarray) -> np.ndarray:
        return self.simulated_many([params])[0]

    def residuals_many(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Scaled residuals at each point ``u`` of the unit cube (one batch)."""
        obs = np.array([t.value for t in self.targets])
        sd = np.array([t.sd for t in self.targets])
        sims = self.simulated_many([self.to_params(u) for u in batch])
        return [np.where(np.isfinite(r), r, 1e3) for r in ((s - obs) / sd for s in sims)]

    def residuals(self, u: np.ndarray) -> np.ndarray:
        return self.residuals_many([u])[0]


class _Runs(dict):
    """Named runs as the estimators look them up: the fitted scenario answers for every scenario
    name (``als_natural_history``, ``pma_natural_history``, ``main``, ...), its month-0 variant
    for every ``<name>@month0``."""

    def __missing__(self, key: str):
        variant = key.partition("@")[2]
        if variant != key and dict.__contains__(self, variant):
            return dict.__getitem__(self, variant)
        raise KeyError(key)


#: How :func:`fit` simulates: ``sweep`` (every batch of evaluations as one sweep on the runner)
#: or ``inline`` (in this process, no files).
ENGINES = ("sweep", "inline")


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
    *,
    engine: str = "sweep",
    workers: int | None = None,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    out: str | Path | None = None,
    progress: bool = False,
) -> FitResult:
    """Fit scenario parameters to target figures by least squares with common random numbers.

    The optimiser (scipy's ``least_squares``, trust region reflective) asks for the residuals at
    one parameter vector at a time and for a central-difference Jacobian (2 vectors per
    parameter). Each such request is one batch of simulations: with ``engine="sweep"`` one
    sweep (:func:`progression.studies.sweep.plan_points`,
    :func:`progression.studies.sweep.run_sweep`: one job
    on the runner, a point per vector and run variant, in parallel over the workers or the
    cluster), the first batch being the start and its Jacobian together; no vector is simulated
    twice. Both engines simulate the same patients with the same seed, and give the same values.

    Args:
        scenario_path: the scenario file.
        params: key path -> (low, high) bounds, e.g.
            ``{"disease.lmn.speed.median": (0.03, 0.15)}``.
        targets: :class:`FitTarget` or tuples ``(statistic, value[, sd])``: a target id of
            :data:`analysis.estimators.ESTIMATORS` (``"als_survival_median_months"``) or a function
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
        engine: ``"sweep"`` (default) or ``"inline"`` (each simulation in this process, one
            after another, nothing written; the options below are for ``"sweep"``).
        workers: worker processes (1 = in this process; default: the usable cores), one local
            dask cluster for the whole fit. Ignored with ``scheduler``.
        scheduler: address of an existing dask cluster (``out`` must then be a folder the
            workers share).
        chunk_size: patients per chunk (default: about one chunk per worker and batch, at
            most one point's cohort; small chunks cost time per patient).
        out: folder for the batches, kept: ``out/eval-000/``, ``eval-001/``, ... each a sweep
            folder (``points.parquet`` holds the parameter values; it must be empty or absent).
            Default: a temporary folder, removed at the end.
        progress: draw the runner's progress bar for each batch.

    Returns:
        A :class:`FitResult` (``summary()`` prints it).

    Raises:
        ValueError: bad bounds, no target, an unknown engine, sweep options with
            ``engine="inline"`` or a non-empty ``out``.
        progression.runner.RunError: a batch could not run (as :func:`progression.runner.run`).
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
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "inline" and (workers, scheduler, chunk_size, out) != (None,) * 4:
        raise ValueError("workers, scheduler, chunk_size and out are for engine='sweep'")

    def stencil(u: np.ndarray) -> list[np.ndarray]:
        """The Jacobian's points: u + step and u - step along each axis, clipped to [0, 1]."""
        return [np.clip(u + sign * e, 0, 1) for e in step * np.eye(len(u)) for sign in (1, -1)]

    def one_fit(cohort_seed: int | None, sweeps: _Sweeps | None) -> tuple[_Objective, Any]:
        obj = _Objective(scenario_path, names, bounds, fit_targets, patients, cohort_seed,
                         overrides, sweeps)
        if start is None:
            u0 = np.full(len(names), 0.5)
        else:
            u0 = np.array([(start[n] - lo) / (hi - lo) for n, (lo, hi) in zip(names, bounds,
                                                                             strict=True)])

        def fun(u: np.ndarray) -> np.ndarray:
            if not obj.cache:  # the start: its Jacobian comes next, simulate both as one batch
                obj.residuals_many([u, *stencil(u)])
            return obj.residuals(u)

        def jac(u: np.ndarray) -> np.ndarray:
            points = stencil(u)
            r = obj.residuals_many(points)
            return np.stack([(r[2 * j] - r[2 * j + 1]) / (points[2 * j][j] - points[2 * j + 1][j])
                             for j in range(len(u))], axis=1)

        res = least_squares(
            fun, np.clip(u0, 0, 1), jac=jac, bounds=(0.0, 1.0), method="trf",
            x_scale=1.0, max_nfev=max(2, max_evaluations // (2 * len(names) + 1)),
        )
        return obj, res

    with (_open_sweeps(out, workers, scheduler, chunk_size, progress) if engine == "sweep"
          else nullcontext()) as sweeps:
        obj, res = one_fit(seed, sweeps)
        values = obj.to_params(res.x)
        simulated = obj.simulated(values)  # memoised: the optimiser evaluated its result
        refits = [one_fit(obj.seed + b, sweeps) for b in range(1, bootstrap + 1)]
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
        simulated=simulated,
        cost=float(np.sum(res.fun**2)),
        evaluations=obj.evaluations + sum(o.evaluations for o, _ in refits),
        success=bool(res.success),
        message=str(res.message),
    )
    if bootstrap:
        result.bootstrap_values = np.array([o.to_params(r.x) for o, r in refits])
        result.bootstrap_sd = result.bootstrap_values.std(axis=0, ddof=1) if bootstrap > 1 else (
            np.abs(result.bootstrap_values[0] - values)
        )
    return result


__all__ = [
    "DEFAULT_PATIENTS",
    "DEFAULT_TARGETS",
    "ENGINES",
    "CalibrationError",
    "FitResult",
    "FitTarget",
    "Validation",
    "fit",
    "run_spec",
    "validate_model",
]
