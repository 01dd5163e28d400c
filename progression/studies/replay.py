"""Exact replay of one patient of a finished run, at motor-unit resolution.

A patient's random numbers depend only on (scenario seed, stream, patient id)
(:mod:`progression.random`), so a :class:`~progression.model.CohortModel` of that one patient,
built from the run's own ``scenario.toml``, gives exactly the rows the run stored for it, in
whichever chunk and worker it was simulated. :func:`replay` re-simulates the patient with a
:class:`~progression.recorder.UnitRecorder`, writes its rows of every table, its unit history and
one figure per muscle (:mod:`analysis.motor_units`), and compares the rows with the stored ones:
a difference is reported (:attr:`Replay.differences`), never smoothed over.

Output folder: ``patients.parquet``, ``visits.parquet``, ``muscles.parquet``, ``events.parquet``
(and ``scans.parquet`` where the scenario records scans): the patient's rows, with the ``arm``
column; ``units.parquet`` and ``tracts.parquet`` (:mod:`progression.recorder`); ``figures/
<muscle>_<side>.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from analysis.io import RunReadError, open_run, run_status
from analysis.motor_units import write_figures
from progression import storage
from progression.model import CohortModel
from progression.recorder import UnitRecorder
from progression.scenario import Scenario, ScenarioError, load_scenario

#: What a replay folder may hold (an existing folder with anything else is not replaced).
REPLAY_FILES = ("patients", "visits", "muscles", "events", "scans", "units", "tracts")


class ReplayError(ValueError):
    """The replay cannot be made; the message is one line saying why."""


@dataclass
class Replay:
    """What :func:`replay` did.

    Attributes:
        out: the replay folder (None if nothing was written).
        patient: the patient id.
        arm: the arm replayed.
        tables: the patient's rows of every table, as the run builds them (``arm`` included).
        history: ``units`` and ``tracts`` (:mod:`progression.recorder`).
        compared: tables compared with the run's stored rows (empty if the run does not
            hold the patient: an incomplete run).
        differences: table -> how the replayed rows differ from the stored ones.
        figures: the PNG files written.
    """

    out: Path | None
    patient: int
    arm: str
    tables: dict[str, pa.Table]
    history: dict[str, pa.Table]
    compared: list[str] = field(default_factory=list)
    differences: dict[str, str] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """Every compared table equals the stored rows (and at least one was compared)."""
        return bool(self.compared) and not self.differences


def simulate_patient(
    scenario: Scenario, patient: int, arm: str
) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
    """Simulate one patient alone: its rows of every table and its unit history."""
    recorder = UnitRecorder([0])
    model = CohortModel(scenario, np.array([patient], dtype=np.int64), arm, recorder=recorder)
    model.run()
    return model.results(), recorder.tables(model)


def run_scenario(run: str | Path) -> Scenario:
    """The scenario of the run in ``run``: its ``scenario.toml``, checked against the hash
    the manifest recorded."""
    run = Path(run)
    try:
        status = run_status(run)
    except RunReadError as e:
        raise ReplayError(str(e)) from None
    if status.sweep:
        raise ReplayError(f"{run} is a sweep: replay a run (progression run) instead")
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    try:
        scenario = load_scenario(run / "scenario.toml")
    except ScenarioError as e:
        raise ReplayError(str(e)) from None
    if scenario.hash != manifest.get("scenario_hash"):
        raise ReplayError(
            f"{run / 'scenario.toml'} is not the scenario the run was made from (its hash "
            f"{scenario.hash[:12]} differs from the manifest's "
            f"{str(manifest.get('scenario_hash'))[:12]})"
        )
    return scenario


def replay(
    run: str | Path,
    patient: int,
    arm: str | None = None,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    muscles: list[tuple[str, str]] | None = None,
) -> Replay:
    """Re-simulate patient ``patient`` of the run in ``run`` and compare it with the stored rows.

    Args:
        run: a run folder (``progression run --out``).
        patient: the patient id (0 to the cohort size - 1).
        arm: the arm (default: the scenario's first arm).
        out: folder for the tables, the unit history and the figures (None: write nothing).
        overwrite: replace the replay files already in ``out``.
        muscles: the (muscle, side) pools to draw (default: every pool).

    Raises:
        ReplayError: not a run, a changed scenario, an unknown patient or arm, an ``out``
            that holds files (without ``overwrite``) or anything but a replay.
    """
    run = Path(run)
    scenario = run_scenario(run)
    arm = scenario.arm_names[0] if arm is None else arm
    if arm not in scenario.arm_names:
        raise ReplayError(f"no arm {arm!r} in {run}: arms are {', '.join(scenario.arm_names)}")
    if not 0 <= patient < scenario.cohort.patients:
        raise ReplayError(f"no patient {patient} in {run}: ids run from 0 to "
                          f"{scenario.cohort.patients - 1}")
    if out is not None:
        _check_out(Path(out), overwrite)
    tables, history = simulate_patient(scenario, patient, arm)
    result = Replay(out=None, patient=patient, arm=arm, tables=tables, history=history)
    _compare(run, result)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for name, table in {**tables, **history}.items():
            storage.write_table_atomic(out / f"{name}.parquet", storage.encode_categories(table))
        frames = {name: _strings(pl.from_arrow(t)) for name, t in {**tables, **history}.items()}
        result.figures = write_figures(frames, out / "figures", muscles)
        result.out = out
    return result


def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ReplayError(f"{out} exists and is not a folder")
    ours = {f"{n}.parquet" for n in REPLAY_FILES} | {"figures"}
    entries = {p.name for p in out.iterdir()}
    foreign = sorted(entries - ours)
    if foreign:
        raise ReplayError(f"{out} holds {foreign[0]}, which a replay does not write: choose "
                          "another --out")
    figures = out / "figures"
    if figures.is_dir() and any(not p.name.endswith(".png") for p in figures.iterdir()):
        raise ReplayError(f"{figures} holds files a replay does not write: choose another --out")
    if entries and not overwrite:
        raise ReplayError(f"{out} holds a replay already: pass --overwrite to replace it")
    if figures.is_dir():
        for p in figures.iterdir():
            p.unlink()


def _strings(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(c).cast(pl.String) for c, t in frame.schema.items()
        if isinstance(t, pl.Categorical | pl.Enum)
    )


def _compare(run: Path, result: Replay) -> None:
    """Fill ``result.compared`` and ``result.differences`` from the run's stored rows."""
    from polars.testing import assert_frame_equal

    frames = open_run(run, allow_incomplete=True)
    key = (pl.col("patient_id") == result.patient) & (pl.col("arm") == result.arm)
    stored_patient = frames["patients"].filter(key).select(pl.len()).collect().item()
    if not stored_patient:
        return  # an incomplete run without this patient's chunk: nothing to compare with
    for name, table in result.tables.items():
        mine = _strings(pl.from_arrow(table))
        if name not in frames:
            result.differences[name] = "the run has no such table"
            continue
        stored = _strings(frames[name].filter(key).collect()).select(mine.columns)
        result.compared.append(name)
        try:
            assert_frame_equal(stored, mine, check_exact=True, check_dtypes=True)
        except AssertionError as e:
            result.differences[name] = " ".join(str(e).split())[:300]
