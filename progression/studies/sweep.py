"""Parameter sweeps: one scenario run at many points of a few physiological parameters, as one job.

A scenario's ``[sweep]`` section (:class:`progression.scenario.Sweep`) names parameters by key
path and gives a design: a ``grid`` of values, or a sample over ranges (``sobol``: Saltelli's
scheme on a scrambled Sobol sequence, SALib; ``latin``: Latin hypercube, ``scipy.stats.qmc``;
``morris``: Morris trajectories, SALib), and ``replicates`` cohort seeds per design row.

:func:`plan_sweep` validates the section against the scenario's schema and builds one scenario
per point by applying the point's values as key-path overrides, exactly as
``load_scenario(FILE, overrides=...)`` (and so ``progression run``) would: a point's tables equal
those of a plain run with its values. Patients' random numbers are keyed by (seed, key path or
process, patient id), so the same patient draws the same standard normals, death thresholds and
noise at every point (common random numbers): differences between points are the parameters'.
:func:`plan_points` builds the same plan from explicit values (rows of key path -> value, each
optionally run under several override sets), e.g. an optimiser's evaluations.

:func:`run_sweep` runs all points as one job on :func:`progression.runner.run` (one plan of
(point, chunk) tasks, one manifest, one progress bar, resume and fault handling as a run), into

    DIR/<table>/point=<k>/arm=<arm>/chunk=<c>/part-0.parquet
    DIR/points.parquet   point, sample (design row), replicate, seed, one column per parameter
                         (and per key path of the points' further overrides, as text)
    DIR/summary.parquet  one row of outcome metrics per point (:mod:`analysis.outcomes`)

Chunk numbers count across the whole sweep (the manifest's chunk index). The design itself is
stored in ``points.parquet``'s metadata, so :mod:`analysis.sensitivity` needs nothing else.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import itertools
import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from progression import storage
from progression.progress import format_bytes
from progression.scenario import (
    Dist,
    Scenario,
    ScenarioError,
    Sweep,
    SweepParameter,
    load_scenario,
)

POINTS = "points.parquet"
SUMMARY = "summary.parquet"
META_SWEEP = "progression.sweep"
#: Safety factor on the measured bytes per patient of the pilot (points differ in survival).
ESTIMATE_MARGIN = 1.5
#: Patients simulated (in memory) at each of a few points to estimate the output size.
PILOT_PATIENTS = 3
PILOT_POINTS = 4
#: Key paths that are not sweepable: a sweep's points share the cohort and the seed.
NOT_SWEPT = ("cohort.patients", "cohort.seed")
#: ``method`` recorded for a sweep of explicit points (:func:`plan_points`): no sampling design.
EXPLICIT = "points"


class SweepError(Exception):
    """A sweep cannot start (e.g. not enough disk space); one line, fit for the terminal."""


@dataclass(frozen=True)
class Point:
    """One run of the sweep.

    Attributes:
        point: its number k (folder ``point=<k>``).
        sample: the design row (replicates of a row share it).
        replicate: replicate number r (cohort seed = scenario seed + r).
        seed: cohort seed of this point.
        values: key path -> value.
        overrides: further key-path overrides of this point that are not parameters (e.g. a
            run variant's ``visits.start``, :func:`plan_points`).
    """

    point: int
    sample: int
    replicate: int
    seed: int
    values: dict[str, float]
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep.

    Attributes:
        base: the scenario as loaded (with its [sweep] section and command-line overrides).
        spec: the [sweep] section.
        parameters: swept key paths, in the file's order.
        points: every run.
        scenarios: the scenario of each point (same order as ``points``).
        integers: swept parameters that are integer fields (their sampled values are rounded).
        hash: sha256 of the base scenario and every point (guards ``--resume``).
    """

    base: Scenario
    spec: Sweep
    parameters: tuple[str, ...]
    points: tuple[Point, ...]
    scenarios: tuple[Scenario, ...]
    integers: tuple[str, ...]
    hash: str

    @property
    def job(self) -> Scenario:
        """The scenario that identifies the whole sweep to the runner."""
        return replace(self.base, hash=self.hash)


# ------------------------------------------------------------------------------- the schema


def key_paths(scenario: Scenario) -> dict[str, bool]:
    """Every numeric key path of ``scenario`` that a sweep may set -> whether it is an integer.

    Numbers of every section, and for each distribution its path (a number there makes it a
    constant) and ``<path>.<parameter>`` for the parameters of its kind (plus ``min``/``max``
    when set); entries of tables of numbers (e.g. ``cohort.onset_region.bulbar``).
    """
    out: dict[str, bool] = {}

    def walk(obj: Any, path: str) -> None:
        for f in fields(obj):
            if f.metadata.get("internal") or f.name == "sweep":
                continue
            key = f"{path}.{f.name}" if path else f.name
            add(getattr(obj, f.name), key)

    def add(value: Any, key: str) -> None:
        if isinstance(value, Dist):
            out[key] = False
            for name in value.p:
                out[f"{key}.{name}"] = False
            if value.lo > -math.inf:
                out[f"{key}.min"] = False
            if value.hi < math.inf:
                out[f"{key}.max"] = False
        elif isinstance(value, bool) or value is None or isinstance(value, str | tuple):
            return
        elif isinstance(value, int | float):
            out[key] = isinstance(value, int)
        elif is_dataclass(value):
            walk(value, key)
        elif isinstance(value, dict):
            for k, v in value.items():
                add(v, f"{key}.{k}")

    walk(scenario, "")
    for key in NOT_SWEPT:
        out.pop(key, None)
    return out


def _where(name: str, attr: str | None = None) -> str:
    key = f'sweep.parameters."{name}"'
    return f"{key}.{attr}" if attr else key


# ------------------------------------------------------------------------------- the design


def _check_spec(spec: Sweep, source: str) -> None:
    """Checks of the [sweep] section that need no scenario."""
    if not spec.parameters:
        raise ScenarioError(f"{source}: sweep.parameters: expected at least one parameter")
    for name, p in spec.parameters.items():
        if spec.method == "grid":
            if not p.values or p.low is not None or p.high is not None:
                raise ScenarioError(
                    f"{source}: {_where(name)}: expected {{ values = [...] }} for method = "
                    "'grid' (low/high are for sobol, latin and morris)"
                )
        else:
            if p.values or p.low is None or p.high is None:
                raise ScenarioError(
                    f"{source}: {_where(name)}: expected {{ low = ..., high = ... }} for method "
                    f"= {spec.method!r} (values are for method = 'grid')"
                )
            if not p.high > p.low:
                raise ScenarioError(
                    f"{source}: {_where(name, 'high')}: expected a value > low ({p.low:g}), "
                    f"got {p.high:g}"
                )
    if spec.method == "sobol" and spec.samples & (spec.samples - 1):
        raise ScenarioError(
            f"{source}: sweep.samples: expected a power of 2 for method = 'sobol' (the Sobol "
            f"sequence's balance properties need it), got {spec.samples}"
        )


def design(spec: Sweep) -> np.ndarray:
    """The design matrix (design rows x parameters, in ``spec.parameters`` order).

    ``grid``: every combination of the values (the last parameter varies fastest);
    ``sobol``: ``samples * (parameters + 2)`` rows (SALib ``sample.sobol``, first and total
    order only); ``latin``: ``samples`` rows (``scipy.stats.qmc.LatinHypercube``); ``morris``:
    ``samples * (parameters + 1)`` rows (SALib ``sample.morris`` on ``levels`` levels).
    Random designs use ``spec.seed``.
    """
    names = list(spec.parameters)
    params = list(spec.parameters.values())
    if spec.method == "grid":
        return np.array(list(itertools.product(*[p.values for p in params])), dtype=np.float64)
    bounds = [[float(p.low), float(p.high)] for p in params]
    problem = {"num_vars": len(names), "names": names, "bounds": bounds}
    if spec.method == "sobol":
        from SALib.sample import sobol

        return sobol.sample(problem, spec.samples, calc_second_order=False, seed=spec.seed)
    if spec.method == "morris":
        from SALib.sample import morris

        return morris.sample(problem, spec.samples, num_levels=spec.levels, seed=spec.seed)
    if spec.method == "latin":
        from scipy.stats import qmc

        unit = qmc.LatinHypercube(d=len(names), rng=np.random.default_rng(spec.seed))
        lo, hi = np.array(bounds).T
        return qmc.scale(unit.random(spec.samples), lo, hi)
    raise ValueError(f"unknown sweep method {spec.method!r}")  # the schema forbids it


def design_points(
    spec: Sweep, seed: int, integers: Sequence[str] = ()
) -> tuple[np.ndarray, list[Point]]:
    """The design matrix and the points: each design row times ``spec.replicates`` seeds.

    Args:
        spec: the [sweep] section.
        seed: the scenario's cohort seed (replicate r uses ``seed + r``).
        integers: parameters whose values are rounded to integers (integer fields).
    """
    x = design(spec)
    names = list(spec.parameters)
    for j, name in enumerate(names):
        if name in integers:
            x[:, j] = np.round(x[:, j])
    points = [
        Point(
            point=i * spec.replicates + r,
            sample=i,
            replicate=r,
            seed=seed + r,
            values={
                n: (int(v) if n in integers else float(v))
                for n, v in zip(names, row, strict=True)
            },
        )
        for i, row in enumerate(x)
        for r in range(spec.replicates)
    ]
    return x, points


def _point_overrides(point: Point, base_seed: int) -> dict[str, Any]:
    extra = {} if point.seed == base_seed else {"cohort.seed": point.seed}
    return {**point.overrides, **point.values, **extra}


def _check_names(source: str, names: Sequence[str], valid: Mapping[str, bool]) -> None:
    """Every name is a key path a sweep may set (else a ScenarioError naming the closest)."""
    for name in names:
        if name in NOT_SWEPT:
            raise ScenarioError(
                f"{source}: {_where(name)}: expected a physiological parameter; the points share "
                "cohort size and seed (use replicates for more seeds)"
            )
        if name not in valid:
            close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.5)
            hint = f"; closest valid: {', '.join(close)}" if close else ""
            raise ScenarioError(f"{source}: {_where(name)}: unknown key path {name!r}{hint}")


def _plan(
    source: str,
    base: Scenario,
    spec: Sweep,
    points: Sequence[Point],
    integers: Sequence[str],
    load: Callable[[dict[str, Any]], Scenario],
) -> SweepPlan:
    """Load every point's scenario (``load(overrides)``) and hash the whole sweep."""
    scenarios = []
    for pt in points:
        try:
            scenarios.append(load(_point_overrides(pt, base.cohort.seed)))
        except ScenarioError as e:
            shown = ", ".join(f"{k} = {v:g}" for k, v in pt.values.items())
            why = str(e).removeprefix(f"{source}: ")
            raise ScenarioError(
                f"{source}: sweep point {pt.point} ({shown}) is invalid: {why}"
            ) from None
    record = json.dumps(
        [base.hash, [[p.point, p.seed, sorted(p.values.items())]
                     + ([sorted(p.overrides.items())] if p.overrides else []) for p in points]],
        separators=(",", ":"), default=str,
    )
    return SweepPlan(
        base=base,
        spec=spec,
        parameters=tuple(spec.parameters),
        points=tuple(points),
        scenarios=tuple(scenarios),
        integers=tuple(integers),
        hash=hashlib.sha256(record.encode()).hexdigest(),
    )


def plan_sweep(
    path: str | Path, *, patients: int | None = None, seed: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> SweepPlan:
    """Load a scenario file with a [sweep] section and validate it point by point.

    Args:
        path: the scenario file.
        patients: override of ``cohort.patients`` (patients per point).
        seed: override of ``cohort.seed`` (the first replicate's; replicate k uses seed + k).
        overrides: key-path overrides applied to the base scenario and every point (as
            ``load_scenario``'s), e.g. ``{"time.duration_months": 24}``.

    Raises:
        ScenarioError: one line naming the file, the key path and what was expected: no
            [sweep] section, an unknown key path (with the closest valid ones), a value outside
            the parameter's valid range (with that range), or a point that does not validate.
    """
    source = str(path)
    overrides = dict(overrides or {})
    base = load_scenario(path, patients=patients, seed=seed, overrides=overrides)
    spec = base.sweep
    if spec is None:
        raise ScenarioError(
            f"{source}: sweep: expected a [sweep] section naming the parameters to vary "
            "(see docs/running/sensitivity.md, Which parameters matter)"
        )
    _check_spec(spec, source)
    valid = key_paths(base)
    _check_names(source, list(spec.parameters), valid)
    integers = [n for n in spec.parameters if valid[n]]

    def load(values: dict[str, Any]) -> Scenario:
        return load_scenario(path, patients=patients, seed=seed, overrides={**overrides, **values})

    # Each bound or grid value alone first, so that the error names the parameter and its range.
    for name, p in spec.parameters.items():
        ends = [(f"values[{i}]", v) for i, v in enumerate(p.values)] or [
            ("low", p.low),
            ("high", p.high),
        ]
        for attr, v in ends:
            if valid[name] and float(v) != round(v):
                raise ScenarioError(
                    f"{source}: {_where(name, attr.split('[')[0])}: expected an integer "
                    f"({name} is one), got {v:g}"
                )
            try:
                load({name: int(round(v)) if valid[name] else v})
            except ScenarioError as e:
                why = str(e).removeprefix(f"{source}: ")
                raise ScenarioError(
                    f"{source}: {_where(name, attr.split('[')[0])}: {v:g} is outside the valid "
                    f"range of {name}: {why}"
                ) from None
    _, points = design_points(spec, base.cohort.seed, integers)
    return _plan(source, base, spec, points, integers, load)


def plan_points(
    path: str | Path,
    rows: Sequence[Mapping[str, float]],
    *,
    variants: Sequence[Mapping[str, Any]] = ({},),
    patients: int | None = None,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> SweepPlan:
    """A sweep of explicit parameter values instead of a [sweep] design (a [sweep] section of
    the file is ignored), e.g. an optimiser's evaluations
    (:func:`progression.studies.calibration.fit`).

    Each row runs once per variant: point ``k = row * len(variants) + variant`` (its ``sample``
    is the row, its :attr:`Point.overrides` the variant), every point on the same cohort seed.

    Args:
        path: the scenario file.
        rows: key path -> value, the same key paths in every row.
        variants: further key-path overrides, one point each per row (e.g.
            ``{"visits.start": "degeneration"}``; none may set a row's key path). Default: one.
        patients: override of ``cohort.patients`` (patients per point).
        seed: override of ``cohort.seed`` (every point's; default the scenario's).
        overrides: key-path overrides applied to the base scenario and every point.

    Raises:
        ScenarioError: as :func:`plan_sweep`: an unknown key path (with the closest valid ones),
            a non-integer value of an integer field, or a point that does not validate.
    """
    source = str(path)
    overrides = dict(overrides or {})
    base = load_scenario(path, patients=patients, seed=seed, overrides=overrides)
    names = list(rows[0]) if rows else []
    variants = [dict(v) for v in variants] or [{}]
    if not names or any(list(row) != names for row in rows):
        raise ScenarioError(
            f"{source}: sweep points: expected at least one row, each with the same key paths"
        )
    clash = sorted({k for v in variants for k in v} & set(names))
    if clash:
        raise ScenarioError(f"{source}: sweep variants set the parameter(s) {', '.join(clash)}")
    valid = key_paths(base)
    _check_names(source, names, valid)
    integers = [n for n in names if valid[n]]
    for n in integers:
        bad = [row[n] for row in rows if float(row[n]) != round(row[n])]
        if bad:
            raise ScenarioError(
                f"{source}: {_where(n)}: expected an integer ({n} is one), got {bad[0]:g}"
            )
    points = [
        Point(
            point=i * len(variants) + j,
            sample=i,
            replicate=0,
            seed=base.cohort.seed,
            values={n: int(round(row[n])) if n in integers else float(row[n]) for n in names},
            overrides=variant,
        )
        for i, row in enumerate(rows)
        for j, variant in enumerate(variants)
    ]
    spec = Sweep(
        parameters={n: SweepParameter(values=tuple(sorted({float(r[n]) for r in rows})))
                    for n in names},
        method=EXPLICIT,
        samples=len(rows),
    )

    def load(values: dict[str, Any]) -> Scenario:
        return load_scenario(path, patients=patients, seed=seed,
                             overrides={**overrides, **values})

    return _plan(source, base, spec, points, integers, load)


# ---------------------------------------------------------------------------- points.parquet


def spec_metadata(spec: Sweep, integers: Sequence[str] = ()) -> dict[str, Any]:
    """The design as stored in ``points.parquet`` (what the sensitivity analysis needs)."""
    return {
        "method": spec.method,
        "samples": spec.samples,
        "levels": spec.levels,
        "replicates": spec.replicates,
        "seed": spec.seed,
        "calc_second_order": False,
        "parameters": [
            {
                "name": name,
                "values": list(p.values),
                "low": p.low,
                "high": p.high,
                "integer": name in integers,
            }
            for name, p in spec.parameters.items()
        ],
    }


def points_table(spec: Sweep, points: Sequence[Point], integers: Sequence[str] = ()) -> pa.Table:
    """``point``, ``sample``, ``replicate``, ``seed``, one column per parameter and one (text,
    null where unset) per key path of the points' :attr:`Point.overrides`."""
    columns: dict[str, Any] = {
        "point": pa.array([p.point for p in points], pa.int64()),
        "sample": pa.array([p.sample for p in points], pa.int64()),
        "replicate": pa.array([p.replicate for p in points], pa.int64()),
        "seed": pa.array([p.seed for p in points], pa.int64()),
    }
    for name in spec.parameters:
        columns[name] = pa.array([float(p.values[name]) for p in points], pa.float64())
    for name in sorted({k for p in points for k in p.overrides} - set(columns)):
        columns[name] = pa.array(
            [None if name not in p.overrides else str(p.overrides[name]) for p in points],
            pa.string(),
        )
    meta = {META_SWEEP: json.dumps(spec_metadata(spec, integers))}
    return pa.table(columns).replace_schema_metadata(meta)


def write_points(out: str | Path, spec: Sweep, points: Sequence[Point],
                 integers: Sequence[str] = ()) -> Path:
    """Write ``out/points.parquet`` atomically."""
    path = Path(out) / POINTS
    storage.write_table_atomic(path, points_table(spec, points, integers))
    return path


# --------------------------------------------------------------------------- size estimate


def _parquet_bytes(table: pa.Table, metadata: dict[str, str]) -> int:
    sink = io.BytesIO()
    extra = {k.encode(): v.encode() for k, v in metadata.items()}
    meta = {**(table.schema.metadata or {}), **extra}
    pq.write_table(storage.encode_categories(table).replace_schema_metadata(meta), sink,
                   compression="zstd")
    return sink.tell()


def estimate_bytes(
    plan: SweepPlan, chunk_size: int, simulate: Callable[[Any, np.ndarray], Any] | None = None
) -> int:
    """Estimated bytes of the sweep's tables, from a small pilot simulated in memory.

    :data:`PILOT_PATIENTS` patients at up to :data:`PILOT_POINTS` points spread over the design
    give the bytes per patient (Parquet, zstd) and per file (schema and metadata); the
    estimate is ``files x bytes per file + patients x bytes per patient``, times
    :data:`ESTIMATE_MARGIN`. Nothing is written.
    """
    if simulate is None:
        from progression.model import simulate_chunk as simulate
    n = len(plan.points)
    picks = sorted({round(i * (n - 1) / max(1, PILOT_POINTS - 1)) for i in range(PILOT_POINTS)})
    patients = min(PILOT_PATIENTS, plan.base.cohort.patients)
    data = overhead = 0.0
    tables_per_chunk = 0
    for i in picks:
        s = plan.scenarios[i]
        result = simulate(s, np.arange(patients, dtype=np.int64))
        meta = storage.file_metadata(s.hash, "0")
        tables_per_chunk = len(result.tables)
        for table in result.tables.values():
            empty = _parquet_bytes(table.slice(0, 0).drop_columns(["arm"]), meta)
            full = _parquet_bytes(table.drop_columns(["arm"]), meta)
            overhead = max(overhead, empty)
            data += max(0, full - empty)
    per_patient = data / (len(picks) * patients)
    chunks = n * math.ceil(plan.base.cohort.patients / chunk_size)
    files = chunks * tables_per_chunk * len(plan.base.arm_names)
    total = files * overhead + n * plan.base.cohort.patients * per_patient
    return int(ESTIMATE_MARGIN * total)


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem that holds ``path`` (or its nearest existing parent)."""
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return int(shutil.disk_usage(path).free)


# ------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did: the runner's summary and the files written."""

    run: Any
    points: int
    estimate_bytes: int | None
    summary_path: Path
    points_path: Path

    def format(self) -> str:
        est = ("" if self.estimate_bytes is None
               else f" (estimated {format_bytes(self.estimate_bytes)})")
        return (f"{self.points} points{est}\n{self.run.format()}\n"
                f"{self.points_path}\n{self.summary_path}")

    __str__ = format


def run_sweep(
    plan: SweepPlan,
    out: str | Path,
    *,
    workers: int | None = None,
    chunk_size: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    yes: bool = False,
    progress: bool | None = None,
    simulate: Callable[[Any, np.ndarray], Any] | None = None,
    metrics: Callable[[Any], Any] | None = None,
) -> SweepSummary:
    """Run every point of ``plan`` into ``out`` as one job, then write points and summary.

    Args:
        plan: from :func:`plan_sweep`.
        out: the sweep folder (empty or absent unless ``resume`` or ``overwrite``).
        workers, chunk_size, scheduler, resume, overwrite, progress, simulate: as
            :func:`progression.runner.run`.
        yes: run even if the estimated output exceeds the free disk space.
        metrics: extra summary columns: a point's lazy tables -> ``{column: value}`` (e.g.
            the calibration targets' estimators), see :func:`analysis.outcomes.summarize_sweep`.

    Raises:
        SweepError: the estimated output exceeds the free space (nothing written).
        RunError: as :func:`progression.runner.run`.
    """
    from analysis.outcomes import summarize_sweep
    from progression import chunking, runner

    out = Path(out).expanduser().resolve()
    estimate = None
    if not yes:
        size = chunk_size or min(
            plan.base.cohort.patients,
            chunking.default_chunk_size(
                plan.base, workers=workers or chunking.usable_cores(),
                patients=plan.base.cohort.patients * len(plan.points),
            ),
        )
        estimate = estimate_bytes(plan, size, simulate)
        have = storage.dir_size(out) if out.is_dir() and (resume or overwrite) else 0
        needed = max(0, estimate - have) if resume else estimate
        free = free_bytes(out) + (have if overwrite else 0)
        if needed > free:
            raise SweepError(
                f"the sweep's output is estimated at {format_bytes(needed)} ({len(plan.points)} "
                f"points x {plan.base.cohort.patients} patients) but {out} has "
                f"{format_bytes(free)} free; free space, reduce the sweep, or add --yes to run "
                "anyway"
            )
    parts = [(f"point={p.point}", s) for p, s in zip(plan.points, plan.scenarios, strict=True)]
    summary_path = out / SUMMARY

    def write_results() -> None:  # while the sweep still owns its folder
        write_points(out, plan.spec, plan.points, plan.integers)
        table = summarize_sweep(out, [p.point for p in plan.points], metrics)
        storage.write_table_atomic(summary_path, table.to_arrow())

    summary = runner.run(
        plan.job, out, workers=workers, chunk_size=chunk_size, scheduler=scheduler,
        resume=resume, overwrite=overwrite, progress=progress, simulate=simulate, parts=parts,
        after=write_results,
    )
    return SweepSummary(summary, len(plan.points), estimate, summary_path, out / POINTS)

