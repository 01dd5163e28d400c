"""Trial endpoints: each one a function from a run's tables to a per-patient value or time to event.

A trial run (a scenario with a ``[trial]``) holds every enrolled patient twice, once per arm, with
common random numbers. This module turns those tables into *per-patient summaries*, computed once,
from which :mod:`analysis.trials` draws thousands of replicate trials as index draws.

The trial window: trial months ``0..T`` (``T`` at most the run's trial), visits every
``visit_interval`` months (a subsample of the run's trial visits), observed only before the
patient's dropout (the run's dropout, plus optional extra dropout drawn per patient); death ends
follow-up. Every summary is computed twice: as the trial sees it (with dropout) and in full (no
dropout), the latter being each patient's counterfactual trajectory in each arm, from which the
true effect is computed.

Endpoint kinds and their summaries:

``slope``
    A value measured at visits (ALSFRS-R total, SVC, muscle sums). Per patient and arm copy: the
    visit count and the sums ``t, t^2, y, t y, y^2`` over observed visits, enough for the exact
    random-intercept-and-slope analysis (:func:`analysis.trial_tests.slope_test`).
``change``
    The same values: change from baseline at trial month ``T`` among patients observed at ``T``.
``time``
    Time from randomisation to an event (death; a 6-point ALSFRS-R loss or death), censored at
    dropout or at ``T``.
``rank``
    CAFS (combined assessment of function and survival, Berry et al. 2013): a joint rank in the
    spirit of Finkelstein and Schoenfeld (1999). Patients who die within the trial rank below all
    survivors, earlier deaths lower; survivors rank by ALSFRS-R change from baseline to their last
    visit (dropouts: last observation). Pairwise comparisons with censoring are replaced by this
    total order so that a replicate's test is one rank-sum; with dropout the only censoring, the
    two differ only for pairs involving a dropout.

Adding an endpoint is one entry in ``ENDPOINTS`` below: a name, a kind, the direction of benefit,
a unit and a source (``visit_value``, ``muscle_sum``, ``muscle_mean`` or a function of your own
with the same signature).
"""

from __future__ import annotations

import math
import operator
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from analysis.io import ENGINE, Run, frames, onset_sites

#: Limb muscles whose MUNE, MUNIX and CMAP are summed (both sides): the MUNIX-sum muscles of
#: Neuwirth et al. (2011, JNNP 82:1175) that the body map has (abductor hallucis is not in it).
SUM_MUSCLES = ("APB", "ADM", "biceps", "TA", "EDB")
#: Limb muscles in the MRC sum score (both sides; 5 points each).
MRC_MUSCLES = ("APB", "FDI", "ADM", "biceps", "TA", "EDB", "quadriceps")

#: Tolerance on trial months (visits fall on whole months).
_EPS = 1e-6


class EndpointError(ValueError):
    """A request the run cannot answer (unknown endpoint, bad window, bad enrichment)."""


# ---------------------------------------------------------------------------------------------
# Options and the trial's patients


@dataclass(frozen=True)
class TrialOptions:
    """How the trial is analysed.

    Attributes:
        trial_months: follow-up ``T`` after randomisation (months); default the run's trial.
        visit_interval: analyse every ``visit_interval``-th month of trial visits (a multiple of
            the run's trial visit interval).
        dropout_per_month: extra dropout (missing at random) on top of the run's, drawn per
            patient (the same in both arm copies) from ``seed``.
        enrich: pre-randomisation criterion: an expression such as ``"dfs >= 0.5"`` or
            ``"dfs < 0.5 and age < 65"``, or a bare number ``x`` meaning ``dfs >= x``
            (see :data:`SCREENING_VARIABLES`).
        seed: seeds the extra dropout.
    """

    trial_months: float | None = None
    visit_interval: float = 1.0
    dropout_per_month: float = 0.0
    enrich: str | None = None
    seed: int = 0


#: Pre-randomisation variables an enrichment criterion may use (all from the screening visit,
#: trial month 0, which is the same in every arm).
SCREENING_VARIABLES = {
    "dfs": "ΔFS: (48 - ALSFRS-R at screening) / months since symptom onset",
    "alsfrs_r": "ALSFRS-R total at screening",
    "svc_percent": "slow vital capacity at screening (% predicted)",
    "months_since_onset": "months from symptom onset to randomisation",
    "age": "age at randomisation (years)",
    "bulbar_onset": "1 if the first symptoms were bulbar (analysis.io.onset_sites), else 0",
}


@dataclass(frozen=True)
class TrialDesign:
    """What the run holds: its arms and trial (read from the run's ``scenario.toml``)."""

    placebo: str
    treatments: tuple[str, ...]
    trial_months: float
    visit_interval: float


#: Defaults of the scenario keys :func:`trial_design` reads from a run's ``scenario.toml``, as
#: the scenario schema gives them (``tests/test_layers.py`` keeps them in step).
SCENARIO_DEFAULTS = {
    "cohort.arms": {"natural_history": {}},
    "cohort.arms.treatment": "none",
    "trial.visit_interval_months": 1,
}


def trial_design(path: str | Path) -> TrialDesign:
    """The placebo arm, the treatment arms and the trial schedule of the run in ``path`` (read
    from its ``scenario.toml`` as plain TOML: the scenario as run, overrides written in).

    Raises:
        EndpointError: the run has no trial, no placebo arm or no treatment arm.
    """
    root = Path(path)
    source = root / "scenario.toml"
    if not source.is_file():
        raise EndpointError(f"{root}: not a progression run (no scenario.toml)")
    try:
        doc = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EndpointError(f"{source}: unreadable scenario ({e})") from None
    trial = doc.get("trial")
    if not isinstance(trial, dict):
        raise EndpointError(f"{root}: the scenario has no [trial] section, so no trial to analyse")
    arms = doc.get("cohort", {}).get("arms", SCENARIO_DEFAULTS["cohort.arms"])
    treatment = {a: spec.get("treatment", SCENARIO_DEFAULTS["cohort.arms.treatment"])
                 for a, spec in arms.items()}
    placebo = [a for a, t in treatment.items() if t == "none"]
    treated = tuple(a for a, t in treatment.items() if t != "none")
    if not treated:
        raise EndpointError(
            f"{root}: no treatment arm (arms: {', '.join(arms)}); power needs a "
            "treatment arm beside placebo"
        )
    if not placebo:
        raise EndpointError(f"{root}: no placebo arm (an arm with treatment = \"none\")")
    interval = trial.get("visit_interval_months", SCENARIO_DEFAULTS["trial.visit_interval_months"])
    return TrialDesign(placebo[0], treated, float(trial["duration_months"]), float(interval))


_COMPARE = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_TERM = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|==|!=|<|>)\s*([-+]?[0-9.]+(?:e[-+]?\d+)?)\s*$")


def parse_enrichment(expr: str) -> list[tuple[str, str, float]]:
    """``"dfs >= 0.5 and age < 65"`` -> ``[("dfs", ">=", 0.5), ("age", "<", 65.0)]``; a bare
    number ``x`` means ``dfs >= x``.

    Raises:
        EndpointError: a term that is not ``variable op number`` or an unknown variable.
    """
    text = expr.strip()
    try:
        return [("dfs", ">=", float(text))]
    except ValueError:
        pass
    terms = []
    for part in re.split(r"\s+and\s+|\s*&\s*", text):
        m = _TERM.match(part)
        if not m:
            raise EndpointError(
                f"enrichment {expr!r}: expected 'variable op number' terms joined by 'and' "
                f"(variables: {', '.join(SCREENING_VARIABLES)}; op one of <, <=, >, >=, ==, !=)"
            )
        name, op, value = m.group(1), m.group(2), float(m.group(3))
        if name not in SCREENING_VARIABLES:
            raise EndpointError(
                f"enrichment {expr!r}: unknown variable {name!r} "
                f"(valid: {', '.join(SCREENING_VARIABLES)})"
            )
        terms.append((name, op, value))
    return terms


def _arm_str(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.with_columns(pl.col("arm").cast(pl.String))


def trial_patients(
    run: Run, design: TrialDesign, options: TrialOptions
) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """The enrolled patients (after enrichment) and their follow-up in every arm copy.

    Returns:
        ``(follow, screening)``: ``follow`` has one row per patient and arm: ``patient_id``,
        ``arm``, ``enrolment_month``, ``dropout`` (trial months to dropout, run's and extra,
        inf if none), ``death`` (trial months to death, inf if alive); ``screening`` maps each
        :data:`SCREENING_VARIABLES` name to an array over the pool, in patient order.
    """
    t = frames(run)
    p = (
        _arm_str(t["patients"])
        .filter(pl.col("enrolled"))
        .select(
            "patient_id",
            "arm",
            "enrolment_month",
            "dropout_month",
            "death_month",
            "symptom_onset_month",
            "age_at_degeneration_years",
        )
        .join(_arm_str(onset_sites(t)), on=["patient_id", "arm"], how="left",
              maintain_order="left")
        .collect(engine=ENGINE)
    )
    arms = (design.placebo, *design.treatments)
    p = p.filter(pl.col("arm").is_in(arms))
    base = (
        _arm_str(t["visits"])
        .filter(pl.col("arm") == design.placebo, pl.col("trial_month").abs() < _EPS)
        .select("patient_id", "alsfrs_r", "svc_percent")
        .collect(engine=ENGINE)
    )
    scr = (
        p.filter(pl.col("arm") == design.placebo)
        .join(base, on="patient_id", how="left")
        .sort("patient_id")
        .with_columns(
            months_since_onset=pl.col("enrolment_month") - pl.col("symptom_onset_month"),
            age=pl.col("age_at_degeneration_years") + pl.col("enrolment_month") / 12.0,
            bulbar_onset=(pl.col("onset_site") == "bulbar").cast(pl.Float64),
        )
        .with_columns(
            dfs=(48.0 - pl.col("alsfrs_r")) / pl.col("months_since_onset").clip(lower_bound=0.5)
        )
    )
    keep = np.ones(scr.height, dtype=bool)
    if options.enrich:
        for name, op, value in parse_enrichment(options.enrich):
            x = scr[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
            keep &= _COMPARE[op](x, value)
    scr = scr.filter(pl.Series(keep))
    ids = scr["patient_id"].to_numpy()
    extra = _extra_dropout(ids, options)
    follow = (
        p.filter(pl.col("patient_id").is_in(pl.Series(ids).implode()))
        .join(pl.DataFrame({"patient_id": ids, "_extra": extra}), on="patient_id")
        .select(
            "patient_id",
            "arm",
            "enrolment_month",
            pl.min_horizontal(
                (pl.col("dropout_month") - pl.col("enrolment_month")).fill_null(math.inf),
                pl.col("_extra"),
            ).alias("dropout"),
            (pl.col("death_month") - pl.col("enrolment_month")).fill_null(math.inf).alias("death"),
        )
        .sort("patient_id", "arm")
    )
    screening = {k: scr[k].cast(pl.Float64).to_numpy() for k in SCREENING_VARIABLES}
    screening["patient_id"] = ids
    return follow, screening


def _extra_dropout(ids: np.ndarray, options: TrialOptions) -> np.ndarray:
    """Trial months to the extra dropout of each patient: Exp(rate), keyed by (seed, patient)."""
    if options.dropout_per_month <= 0 or len(ids) == 0:
        return np.full(len(ids), math.inf)
    rng = np.random.default_rng(np.random.SeedSequence(options.seed, spawn_key=(0xD0,)))
    draws = rng.standard_exponential(int(ids.max()) + 1)
    return draws[ids] / options.dropout_per_month


# ---------------------------------------------------------------------------------------------
# Sources: from the tables to per-visit values or event times

#: (tables) -> LazyFrame[patient_id, arm, trial_month, value] over trial visits.
Measure = Callable[[Mapping[str, pl.LazyFrame]], pl.LazyFrame]


def _trial_rows(lf: pl.LazyFrame) -> pl.LazyFrame:
    return _arm_str(lf).filter(pl.col("trial_month").is_not_null())


def visit_value(column: str, transform: Callable[[pl.Expr], pl.Expr] | None = None) -> Measure:
    """A ``visits`` column as the value (optionally transformed)."""

    def measure(t: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
        v = pl.col(column).cast(pl.Float64)
        return _trial_rows(t["visits"]).select(
            "patient_id", "arm", "trial_month", (transform(v) if transform else v).alias("value")
        )

    return measure


class TrialTables(dict):
    """A run's lazy tables (``open_run``) plus what the muscle measures share: the trial window
    ``T`` and a cache of the muscles table's trial rows, read once for all muscle endpoints."""

    def __init__(self, tables: Mapping[str, pl.LazyFrame], T: float = math.inf,
                 muscle_columns: Sequence[str] = ()) -> None:
        super().__init__(tables)
        self.T = T
        self.muscle_columns = tuple(muscle_columns)
        self.cache: dict = {}


def _muscle_frame(t: Mapping[str, pl.LazyFrame], column: str) -> pl.DataFrame:
    """The muscles table's trial rows (``patient_id, arm, trial_month, muscle`` and ``column``),
    in scan order, in which a visit's muscles are contiguous and in body-map order. With a
    :class:`TrialTables`, read once (with every column its endpoints need) and cached."""
    T = getattr(t, "T", math.inf)
    cache = getattr(t, "cache", None)
    if cache is not None and column in cache.get("columns", ()):
        return cache["frame"]
    columns = tuple(dict.fromkeys((*getattr(t, "muscle_columns", ()), column)))
    frame = (
        _trial_rows(t["muscles"])
        .filter(pl.col("trial_month") <= T + _EPS)
        .select(
            "patient_id",
            "arm",
            "trial_month",
            pl.col("muscle").cast(pl.String),
            *(pl.col(c).cast(pl.Float64) for c in columns),
        )
        .collect(engine=ENGINE)
    )
    if cache is not None:
        cache.update(columns=columns, frame=frame)
    return frame


def _per_visit(
    frame: pl.DataFrame, column: str, keep: np.ndarray, how: str
) -> pl.LazyFrame:
    """``column`` over the kept muscle rows reduced per visit (``sum``: null if any is null;
    ``mean``: over non-null values). Visits are runs of equal keys in the frame's order, reduced
    with ``np.add.reduceat``, so the float sums run in a fixed order and the same run gives the
    same bits (a polars ``group_by`` sum does not: its order depends on threading)."""
    sub = frame.filter(pl.Series(keep))
    if sub.height == 0:
        return pl.LazyFrame(schema={"patient_id": pl.Int64, "arm": pl.String,
                                    "trial_month": pl.Float64, "value": pl.Float64})
    keys = ["patient_id", "arm", "trial_month"]
    run = sub.select(pl.struct(keys).rle_id()).to_series().to_numpy()
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    x = sub[column].to_numpy().astype(np.float64)  # nulls -> nan
    missing = np.isnan(x)
    nulls = np.add.reduceat(missing.astype(np.int64), starts)
    total = np.add.reduceat(np.where(missing, 0.0, x), starts)
    if how == "sum":
        value = np.where(nulls == 0, total, np.nan)
    else:
        count = np.diff(np.r_[starts, len(x)]) - nulls
        value = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    out = sub[starts].select(keys).with_columns(value=pl.Series(value))
    if out.select(pl.struct(keys).is_duplicated().any()).item():
        # A visit's rows were not contiguous (an unexpected scan order): sort (stably) first.
        order = sub.with_row_index("_i").sort(keys, maintain_order=True)["_i"].to_numpy()
        frame2 = sub[order]
        return _per_visit(frame2, column, np.ones(frame2.height, dtype=bool), how)
    return out.lazy().filter(pl.col("value").is_not_nan())


def muscle_sum(column: str, muscles: Sequence[str], log_percent: bool = False) -> Measure:
    """Sum of a ``muscles`` column over ``muscles`` (both sides) at each visit (visits missing
    any of them have no value); with ``log_percent``, ``100 ln(sum)`` so that a slope reads as
    percent per month."""

    def measure(t: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
        frame = _muscle_frame(t, column)
        keep = frame["muscle"].is_in(list(muscles)).to_numpy()
        out = _per_visit(frame, column, keep, "sum")
        if log_percent:
            out = out.with_columns((100.0 * pl.col("value").log()).alias("value"))
        return out

    measure.muscle_column = column
    return measure


def muscle_mean(column: str) -> Measure:
    """Mean of a ``muscles`` column over the muscles where it is measured (not null) at each
    visit; a visit where it is measured nowhere has no value."""

    def measure(t: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
        frame = _muscle_frame(t, column)
        keep = frame[column].is_not_null().to_numpy()
        return _per_visit(frame, column, keep, "mean")

    measure.muscle_column = column
    return measure


#: (tables, window-restricted long ALSFRS-R frame, follow-up) -> LazyFrame[patient_id, arm,
#: event] with the event's trial month (null when none is recorded).
EventSource = Callable[[Mapping[str, pl.LazyFrame], pl.LazyFrame], pl.LazyFrame]


def death() -> EventSource:
    """Death of any cause (respiratory failure or other causes)."""

    def source(t: Mapping[str, pl.LazyFrame], long: pl.LazyFrame) -> pl.LazyFrame:
        return long.select("patient_id", "arm").unique().with_columns(event=pl.lit(None))

    return source


def functional_loss(points: float) -> EventSource:
    """The first analysed visit with ALSFRS-R at least ``points`` below baseline (or death)."""

    def source(t: Mapping[str, pl.LazyFrame], long: pl.LazyFrame) -> pl.LazyFrame:
        base = long.filter(pl.col("trial_month") == 0).select(
            "patient_id", "arm", pl.col("value").alias("_base")
        )
        return (
            long.join(base, on=["patient_id", "arm"])
            .group_by("patient_id", "arm")
            .agg(
                pl.col("trial_month")
                .filter(pl.col("value") <= pl.col("_base") - points)
                .min()
                .alias("event")
            )
        )

    return source


# ---------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class Endpoint:
    """One endpoint.

    Attributes:
        name: registry key (``--endpoints``).
        kind: ``slope``, ``change``, ``time`` or ``rank``.
        better: +1 if a higher value is better for the patient, -1 if lower (for ``time``
            endpoints the estimate is a hazard ratio: -1).
        unit: the estimate's unit (slope and change: the value's difference drug - placebo).
        measure: per-visit values (``slope``, ``change``; for ``time`` and ``rank`` the
            ALSFRS-R-like values the event or rank reads).
        events: for ``time``: the event source (death always counts too).
        doc: one line for tables and the README.
    """

    name: str
    kind: str
    better: int
    unit: str
    measure: Measure
    events: EventSource | None = None
    doc: str = ""


_ALSFRS = visit_value("alsfrs_r")

ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("alsfrs_slope", "slope", +1, "points/month", _ALSFRS, doc="ALSFRS-R total slope"),
        Endpoint(
            "alsfrs_change", "change", +1, "points", _ALSFRS,
            doc="ALSFRS-R change from baseline at month T (patients seen at T)",
        ),
        Endpoint("svc_slope", "slope", +1, "% predicted/month", visit_value("svc_percent"),
                 doc="slow vital capacity slope"),
        Endpoint("survival", "time", -1, "hazard ratio", _ALSFRS, death(),
                 doc="death (any cause) from randomisation"),
        Endpoint("cafs", "rank", +1, "P(drug better)", _ALSFRS,
                 doc="CAFS: joint rank of survival and ALSFRS-R change"),
        Endpoint("time_to_6pt_loss", "time", -1, "hazard ratio", _ALSFRS, functional_loss(6),
                 doc="first visit 6 ALSFRS-R points below baseline, or death"),
        Endpoint("mune_slope", "slope", +1, "%/month", muscle_sum("mune", SUM_MUSCLES, True),
                 doc="MUNE sum (APB, ADM, biceps, TA, EDB; both sides): slope of 100 ln(sum)"),
        Endpoint("munix_slope", "slope", +1, "%/month", muscle_sum("munix", SUM_MUSCLES, True),
                 doc="MUNIX sum (same muscles): slope of 100 ln(sum)"),
        Endpoint("cmap_slope", "slope", +1, "mV/month", muscle_sum("cmap_mv", SUM_MUSCLES),
                 doc="CMAP amplitude sum (same muscles) slope"),
        Endpoint("mrc_slope", "slope", +1, "points/month", muscle_sum("mrc_grade", MRC_MUSCLES),
                 doc="MRC sum score (7 limb muscles, both sides; 0-70) slope"),
        Endpoint("cmct_slope", "slope", -1, "ms/month", muscle_mean("cmct_ms"),
                 doc="CMCT mean over TMS targets with a motor evoked potential: slope"),
    )
}


def resolve(names: Sequence[str] | str | None) -> list[Endpoint]:
    """Endpoints by name (``None``: all); an unknown name lists the valid ones."""
    if names is None:
        return list(ENDPOINTS.values())
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENDPOINTS]
    if unknown:
        raise EndpointError(
            f"unknown endpoint {', '.join(map(repr, unknown))} (valid: {', '.join(ENDPOINTS)})"
        )
    if not names:
        raise EndpointError(f"no endpoint given (valid: {', '.join(ENDPOINTS)})")
    return [ENDPOINTS[n] for n in dict.fromkeys(names)]


# ---------------------------------------------------------------------------------------------
# Per-patient summaries


@dataclass
class Summary:
    """One endpoint's per-patient summaries: arrays shaped ``(copies, patients)``; copy 0 is the
    placebo arm, copy ``k`` the ``k``-th treatment arm. ``obs`` as the trial sees it (dropout),
    ``full`` without dropout (the counterfactual trajectory).

    Fields by kind: ``slope``: ``n, st, stt, sy, sty, syy``; ``change``: ``change`` (nan when not
    seen at T); ``time``: ``time, event``; ``rank``: ``key`` (higher is better).
    """

    endpoint: Endpoint
    obs: dict[str, np.ndarray]
    full: dict[str, np.ndarray]
    cache: dict = field(default_factory=dict, repr=False)


@dataclass
class TrialData:
    """Everything a replicate needs, computed once from a run.

    Attributes:
        design: the run's arms and trial.
        options: the analysis window.
        trial_months: ``T``.
        times: the analysed visit months ``0, k, 2k, ..., T``.
        ids: the pool of enrolled patients (after enrichment), sorted.
        arms: copy index -> arm name (0 is placebo).
        summaries: endpoint name -> :class:`Summary`.
        screening: pre-randomisation variables over the pool.
    """

    design: TrialDesign
    options: TrialOptions
    trial_months: float
    times: np.ndarray
    ids: np.ndarray
    arms: tuple[str, ...]
    summaries: dict[str, Summary] = field(default_factory=dict)
    screening: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def max_n_per_arm(self) -> int:
        """Each patient serves in one arm only: at most half the pool per arm."""
        return len(self.ids) // 2


def window(design: TrialDesign, options: TrialOptions) -> tuple[float, np.ndarray]:
    """``T`` and the analysed visit months, checked against the run's trial."""
    T = design.trial_months if options.trial_months is None else float(options.trial_months)
    if not 0 < T <= design.trial_months + _EPS:
        raise EndpointError(
            f"trial length {T:g} months: must be positive and at most the run's trial "
            f"({design.trial_months:g} months)"
        )
    k = float(options.visit_interval)
    ratio = k / design.visit_interval
    if k <= 0 or abs(ratio - round(ratio)) > _EPS:
        raise EndpointError(
            f"visit interval {k:g}: must be a positive multiple of the run's trial visit "
            f"interval ({design.visit_interval:g} months)"
        )
    times = np.arange(0.0, T + _EPS, k)
    if len(times) < 2:
        raise EndpointError(f"visit interval {k:g} leaves fewer than 2 visits in {T:g} months")
    return T, times


def _windowed(long: pl.LazyFrame, follow: pl.LazyFrame, T: float, k: float) -> pl.LazyFrame:
    """Values at the analysed trial visits, with ``seen`` (before dropout)."""
    tm = pl.col("trial_month")
    return (
        long.filter(
            tm <= T + _EPS,
            ((tm / k) - (tm / k).round()).abs() < _EPS,
            pl.col("value").is_not_null() & pl.col("value").is_finite(),
        )
        .join(follow, on=["patient_id", "arm"], how="inner")
        .filter(tm <= pl.col("death") + _EPS)
        .with_columns(seen=tm < pl.col("dropout") - _EPS)
    )


def _to_arrays(
    df: pl.DataFrame, ids: np.ndarray, arms: Sequence[str], columns: Mapping[str, float]
) -> dict[str, np.ndarray]:
    """Columns of ``df`` (keyed by patient_id, arm) as ``(copies, patients)`` arrays, filling
    absent patients with ``columns[name]``."""
    out = {c: np.full((len(arms), len(ids)), fill, dtype=np.float64) for c, fill in columns.items()}
    arm_index = {a: i for i, a in enumerate(arms)}
    if df.height == 0:
        return out
    a = np.array([arm_index[x] for x in df["arm"].to_list()], dtype=np.int64)
    j = np.searchsorted(ids, df["patient_id"].to_numpy())
    for c in columns:
        out[c][a, j] = df[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return out


SLOPE_FIELDS = ("n", "st", "stt", "sy", "sty", "syy")


def load_trial(
    run: str | Path,
    endpoints: Sequence[str] | str | None = None,
    options: TrialOptions | None = None,
    tables: Mapping[str, pl.LazyFrame] | None = None,
) -> TrialData:
    """Per-patient summaries of ``endpoints`` for every enrolled patient and arm copy.

    Args:
        run: the run folder (its ``scenario.toml`` names the arms and the trial).
        endpoints: names from :data:`ENDPOINTS` (default all).
        options: the analysis window, extra dropout and enrichment.
        tables: the run's lazy tables if the caller opened them (default ``open_run(run)``).

    Raises:
        EndpointError: no treatment arm, unknown endpoint, bad window or enrichment.
    """
    from analysis.io import open_run

    options = options or TrialOptions()
    chosen = resolve(endpoints)
    if options.dropout_per_month < 0 or not math.isfinite(options.dropout_per_month):
        raise EndpointError(f"extra dropout {options.dropout_per_month!r}: must be >= 0 per month")
    design = trial_design(run)
    T, times = window(design, options)
    muscle_columns = [getattr(e.measure, "muscle_column", None) for e in chosen]
    tables = TrialTables(open_run(run) if tables is None else tables, T,
                         [c for c in muscle_columns if c])
    follow, screening = trial_patients(tables, design, options)
    ids = screening["patient_id"]
    arms = (design.placebo, *design.treatments)
    data = TrialData(design, options, T, times, ids, arms, screening=screening)
    follow_lazy = follow.lazy()
    k = float(options.visit_interval)

    # Follow-up arrays shared by the time and rank endpoints.
    fa = _to_arrays(follow, ids, arms, {"dropout": math.inf, "death": math.inf})
    measures: dict[int, dict[str, np.ndarray]] = {}  # id(measure) -> per-patient arrays

    def per_patient(e: Endpoint) -> dict[str, np.ndarray]:
        key = id(e.measure)
        if key not in measures:
            w = (
                _windowed(e.measure(tables), follow_lazy, T, k)
                .select("patient_id", "arm", "trial_month", "value", "seen")
                .sort("patient_id", "arm", "trial_month")
                .collect(engine=ENGINE)
            )
            measures[key] = _per_patient_arrays(w, ids, arms, T)
        return measures[key]

    for e in chosen:
        if e.kind == "slope":
            arr = per_patient(e)
            obs = {f: arr[f + "_obs"] for f in SLOPE_FIELDS}
            full = {f: arr[f + "_full"] for f in SLOPE_FIELDS}
        elif e.kind == "change":
            arr = per_patient(e)
            change = arr["atT"] - arr["base"]
            full = {"change": change}
            obs = {"change": np.where(arr["last_t"] >= T - _EPS, change, np.nan)}
        elif e.kind == "time":
            w = _windowed(e.measure(tables), follow_lazy, T, k)
            ev = e.events(tables, w).collect(engine=ENGINE)
            arr = _to_arrays(ev, ids, arms, {"event": np.nan})
            event_t = np.fmin(np.nan_to_num(arr["event"], nan=np.inf), fa["death"])
            obs, full = _censor(event_t, fa["dropout"], T)
        elif e.kind == "rank":
            arr = per_patient(e)
            obs = {"key": _cafs_key(fa["death"], fa["dropout"], arr["last"] - arr["base"], T)}
            full = {"key": _cafs_key(fa["death"], np.inf, arr["atT"] - arr["base"], T)}
        else:  # pragma: no cover - guarded by the registry
            raise EndpointError(f"endpoint {e.name}: unknown kind {e.kind!r}")
        data.summaries[e.name] = Summary(e, obs, full)
    return data


def _per_patient_arrays(
    w: pl.DataFrame, ids: np.ndarray, arms: Sequence[str], T: float
) -> dict[str, np.ndarray]:
    """Per (copy, patient) from the windowed visits (sorted by patient, arm, month): the slope
    sums over seen visits (``*_obs``) and all visits (``*_full``), the baseline, the value at
    ``T``, and the last seen month and value. Sums run in row order (``np.bincount``), so the
    same run gives the same bits."""
    shape = (len(arms), len(ids))
    size = shape[0] * shape[1]
    arm_index = {a: i for i, a in enumerate(arms)}
    copy = np.array([arm_index[a] for a in w["arm"].to_list()], dtype=np.int64)
    cell = copy * len(ids) + np.searchsorted(ids, w["patient_id"].to_numpy())
    t = w["trial_month"].to_numpy()
    y = w["value"].to_numpy().astype(np.float64)
    seen = w["seen"].to_numpy()
    base_rows = np.abs(t) < _EPS
    if base_rows.any():
        # Centre on the mean baseline (a constant: slopes and changes are unaffected) so that
        # the sums of squares keep their precision.
        y = y - np.mean(y[base_rows])
    out: dict[str, np.ndarray] = {}
    for suffix, mask in (("_obs", seen), ("_full", np.ones_like(seen))):
        c, tt, yy = cell[mask], t[mask], y[mask]
        for name, weight in (
            ("n", None), ("st", tt), ("stt", tt * tt), ("sy", yy), ("sty", tt * yy),
            ("syy", yy * yy),
        ):
            out[name + suffix] = np.bincount(c, weight, minlength=size).reshape(shape)
            if weight is None:
                out[name + suffix] = out[name + suffix].astype(np.float64)

    def at(rows: np.ndarray, values: np.ndarray, last: bool = False) -> np.ndarray:
        res = np.full(size, np.nan)
        c = cell[rows]
        v = values[rows]
        if last:
            c, v = c[::-1], v[::-1]
        uniq, first = np.unique(c, return_index=True)
        res[uniq] = v[first]
        return res.reshape(shape)

    out["base"] = at(base_rows, y)
    out["atT"] = at(t >= T - _EPS, y)
    out["last_t"] = at(seen, t, last=True)
    out["last"] = at(seen, y, last=True)
    return out


def _censor(event_t: np.ndarray, dropout: np.ndarray, T: float):
    """(observed, full) ``time, event``: censored at min(dropout, T), or at T only."""
    stop = np.minimum(dropout, T)
    obs = {"time": np.minimum(event_t, stop), "event": (event_t <= stop + _EPS).astype(float)}
    full = {"time": np.minimum(event_t, T), "event": (event_t <= T + _EPS).astype(float)}
    return obs, full


#: Offset that puts every death below every survivor in the CAFS key (ALSFRS-R change >= -48).
_DEATH_OFFSET = 1e4


def _cafs_key(death: np.ndarray, dropout, change: np.ndarray, T: float) -> np.ndarray:
    """Higher is better: deaths observed within the trial rank by time of death below all
    survivors; survivors by ALSFRS-R change (nan change -> worst survivor)."""
    stop = np.minimum(dropout, T)
    died = death <= stop + _EPS
    change = np.nan_to_num(change, nan=-100.0)
    return np.where(died, death - _DEATH_OFFSET, change)


def trial_values(
    run: str | Path, endpoint: str, options: TrialOptions | None = None
) -> pl.DataFrame:
    """The values a longitudinal endpoint reads at the analysed visits, one row per patient, arm
    and visit: ``patient_id, arm, trial_month, value, seen`` (``seen``: before dropout). This is
    the long data a mixed model would be fitted to."""
    from analysis.io import open_run

    options = options or TrialOptions()
    (e,) = resolve([endpoint])
    design = trial_design(run)
    T, _ = window(design, options)
    tables = TrialTables(open_run(run), T)
    follow, _ = trial_patients(tables, design, options)
    return (
        _windowed(e.measure(tables), follow.lazy(), T, float(options.visit_interval))
        .select("patient_id", "arm", "trial_month", "value", "seen")
        .sort("patient_id", "arm", "trial_month")
        .collect(engine=ENGINE)
    )
