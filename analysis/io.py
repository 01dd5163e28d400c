"""Open a run as lazy polars frames, one per table, with hive partitions (arm, point).

A run folder is read through its ``manifest.json`` (plain JSON; see the documentation's Output and
schema, docs/running/output.md): only the files of the chunks it lists as complete are read, each
checked to exist with its recorded size, so a reader never silently gets fewer patients than the run
holds. An incomplete run (interrupted, still running) is refused unless the caller asks for the
part, and then :func:`run_status` says how much of it there is. This module imports nothing from the
engine.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import polars as pl

TABLES = ("patients", "visits", "muscles", "events")
MANIFEST = "manifest.json"


class RunReadError(ValueError):
    """A folder cannot be read as a whole, intact run; the message is one line saying why and
    what to do."""


@dataclass(frozen=True)
class RunStatus:
    """How much of a run its folder holds (from ``manifest.json``).

    Attributes:
        path: the run folder.
        patients: patients of the whole run (a sweep: all points).
        complete_patients: patients of its complete chunks.
        chunks: chunks planned.
        complete_chunks: chunks complete.
        sweep: whether the folder holds a sweep (``point=`` partitions).
        files: table -> the files of the complete chunks (checked present, of recorded size).
        scenario_path: the scenario the run was started from, as recorded.
    """

    path: Path
    patients: int
    complete_patients: int
    chunks: int
    complete_chunks: int
    sweep: bool
    files: dict[str, list[Path]] = field(default_factory=dict)
    scenario_path: str = ""

    @property
    def complete(self) -> bool:
        return self.complete_chunks == self.chunks

    def resume_command(self) -> str:
        """The command that completes the run."""
        return resume_command(self.path, self.scenario_path if self.sweep else None)

    def describe(self) -> str:
        """One line: ``incomplete run: 70 of 300 patients (2 of 8 chunks complete)``."""
        return (
            f"incomplete run: {self.complete_patients:,} of {self.patients:,} patients "
            f"({self.complete_chunks} of {self.chunks} chunks complete)"
        )

    def refusal(self) -> str:
        """Why a reader refuses this incomplete run, and what to do (one line)."""
        return (f"{self.path}: {self.describe()}; complete it with: {self.resume_command()} "
                "(or read the complete part: --allow-incomplete)")


def resume_command(path: str | Path, sweep_scenario: str | Path | None = None) -> str:
    """The command that completes the run in ``path``: from the run's own ``scenario.toml``,
    or for a sweep from its scenario file with the ``[sweep]`` section."""
    if sweep_scenario is not None:
        return f"progression sweep {sweep_scenario} --out {path} --resume"
    return f"progression run {Path(path) / 'scenario.toml'} --out {path} --resume"


def _load_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        what = "a folder" if root.is_dir() else "no folder"
        raise RunReadError(f"{root}: not a progression run ({what} without {MANIFEST})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunReadError(f"{path}: unreadable manifest ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("chunks"), list) or not isinstance(
        data.get("completed"), list
    ):
        raise RunReadError(f"{path}: not a progression manifest")
    if data.get("format") not in (1, 2):
        raise RunReadError(f"{path}: manifest format {data.get('format')!r} is not one this "
                           "version reads (1 or 2)")
    return data


def _chunk_files(root: Path, data: dict) -> dict[str, list[Path]]:
    """Files of the complete chunks, per table; checked present and of the recorded size."""
    files: dict[str, list[Path]] = {}
    if data["format"] == 1:  # progression 0.1 recorded chunks, not files
        done = {int(c["chunk"]) for c in data["completed"]}
        for name in (*TABLES, "scans"):
            found = [p for p in sorted((root / name).glob("**/chunk=*/*.parquet"))
                     if int(p.parent.name.removeprefix("chunk=")) in done]
            if found:
                files[name] = found
        return files
    for record in data["completed"]:
        for f in record.get("files", []):
            parts = Path(f["path"]).parts
            if Path(f["path"]).is_absolute() or ".." in parts:
                raise RunReadError(f"{root / MANIFEST}: file path {f['path']!r} leaves the run")
            path = root / f["path"]
            try:
                size = path.stat().st_size
            except OSError:
                raise RunReadError(_damaged(root, f"{f['path']} is missing")) from None
            if size != f["bytes"]:
                raise RunReadError(_damaged(
                    root, f"{f['path']} is {size:,} bytes, the manifest recorded {f['bytes']:,}"
                ))
            files.setdefault(f["path"].split("/", 1)[0], []).append(path)
    return files


def _damaged(root: Path, problem: str) -> str:
    return (f"{root}: damaged run: {problem}; `progression verify {root}` lists every damaged "
            "file and `--resume` redoes their chunks")


def run_status(path: str | Path) -> RunStatus:
    """How much of the run at ``path`` is there (see :class:`RunStatus`).

    Raises:
        RunReadError: no manifest, an unreadable one, or a listed file missing or truncated.
    """
    root = Path(path)
    data = _load_manifest(root)
    done = {int(c["chunk"]) for c in data["completed"]}
    return RunStatus(
        path=root,
        patients=int(data.get("patients", 0)),
        complete_patients=sum(int(c["stop"]) - int(c["first"]) for c in data["completed"]),
        chunks=len(data["chunks"]),
        complete_chunks=len(done),
        sweep=bool(data.get("prefixes")),
        files=_chunk_files(root, data),
        scenario_path=str(data.get("scenario_path", "")),
    )


def open_run(
    path: str | Path, *, allow_incomplete: bool = False, point: int | None = None,
    status: RunStatus | None = None,
) -> dict[str, pl.LazyFrame]:
    """Lazy frames for a run's tables.

    Nothing is read until a query is collected; filters on ``arm`` prune whole partitions and
    other filters are pushed down into the Parquet scan. The ``chunk`` partition column is
    dropped: it is a storage detail, not data. A sweep's tables have a ``point`` column.

    Args:
        path: the run's output folder (holding ``manifest.json``, ``patients/``, ...).
        allow_incomplete: read the complete chunks of an unfinished run instead of refusing it
            (then say so wherever the result is shown: :func:`run_status` gives the numbers).
        point: of a sweep, only this point's rows (without the ``point`` column).
        status: :func:`run_status` of ``path`` if the caller has it (saves checking the files
            again, e.g. for every point of a sweep).

    Raises:
        RunReadError: not a run, a damaged one, or an incomplete one without
            ``allow_incomplete``.
    """
    status = status or run_status(path)
    if not status.complete and not allow_incomplete:
        raise RunReadError(status.refusal())
    if not status.files.get("patients"):
        raise RunReadError(f"{status.path}: no complete chunk yet")
    frames = {}
    for name in TABLES + ("scans",):
        files = status.files.get(name)
        if point is not None and files:
            files = [f for f in files if f.parent.parent.parent.name == f"point={point}"]
        if not files:
            continue
        schema = {"arm": pl.String, "chunk": pl.Int64}
        if status.sweep:
            schema = {"point": pl.Int64, **schema}
        lf = pl.scan_parquet(files, hive_partitioning=True, hive_schema=schema).drop("chunk")
        frames[name] = lf.drop("point") if point is not None else lf
    missing = [t for t in TABLES if t not in frames]
    if missing:
        where = f"point {point} of " if point is not None else ""
        raise RunReadError(f"{where}{status.path} has no {', '.join(missing)} table(s)")
    return frames


def write_atomic(path: Path, write: Callable[[BinaryIO], object] | bytes | str) -> None:
    """Write ``path`` through a temporary file beside it and ``os.replace``, so a reader never
    sees half a file; ``write`` is the content (bytes, or text as UTF-8) or writes to the file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "wb") as f:
            if isinstance(write, str):
                f.write(write.encode("utf-8"))
            elif isinstance(write, bytes):
                f.write(write)
            else:
                write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


#: A run as the analysis functions accept it: the dict from :func:`open_run`, or its folder.
Run = Mapping[str, pl.LazyFrame] | str | Path

#: The polars engine every query of this package collects with: the streaming engine reads a
#: run's files in batches, so a count, sum or join over a run of millions of patients does
#: not hold all its rows at once (grouped medians are batched by :mod:`analysis.quantiles`).
ENGINE = "streaming"

#: Region -> onset site as clinical papers group it (limb = arm or leg).
ONSET_SITE = {"bulbar": "bulbar", "cervical": "limb", "lumbosacral": "limb", "thoracic": "trunk"}


def frames(run: Run) -> Mapping[str, pl.LazyFrame]:
    """The lazy tables of ``run``: the dict itself, or :func:`open_run` of a folder."""
    if isinstance(run, (str, Path)):
        return open_run(run)
    missing = [t for t in TABLES if t not in run]
    if missing:
        raise KeyError(f"run has no {', '.join(missing)} table(s); use analysis.open_run(path)")
    return run


def patients(run: Run, columns: Sequence[str] = ()) -> pl.LazyFrame:
    """The patients table with ``columns`` (plus ``patient_id``), categories as plain strings.

    Besides the stored columns two are derived, each ``bulbar``, ``limb`` (cervical or
    lumbosacral) or ``trunk`` (thoracic), the grouping of clinical papers:

    - ``onset_site``: where the first symptoms appeared (:func:`onset_sites`), as a clinic
      records it and as the papers mean it; null for a patient never symptomatic in the run.
    - ``degeneration_onset_site``: the latent region where degeneration started
      (``onset_region``), which only the simulation knows.
    """
    wanted = list(dict.fromkeys(["patient_id", *columns]))
    stored = [c for c in wanted if c not in ("onset_site", "degeneration_onset_site")]
    if "degeneration_onset_site" in wanted:
        stored.append("onset_region")
    t = frames(run)
    keys = patient_keys(t)
    if "onset_site" in wanted:
        stored += keys
    stored = list(dict.fromkeys(stored))
    lf = t["patients"].select(stored).with_columns(
        pl.col(c).cast(pl.String) for c in stored if c in _CATEGORIES
    )
    if "degeneration_onset_site" in wanted:
        lf = lf.with_columns(
            degeneration_onset_site=pl.col("onset_region").replace_strict(
                ONSET_SITE, default="other"
            )
        )
    if "onset_site" in wanted:
        lf = lf.join(onset_sites(t), on=keys, how="left", maintain_order="left")
    return lf.select(wanted)


def onset_sites(run: Run) -> pl.LazyFrame:
    """Where each patient's first symptoms appeared: the region of the earliest
    ``region_onset`` event (the first recorded if several share its month), as the onset site
    of clinical papers (:data:`ONSET_SITE`). Patients never symptomatic have no row.

    Returns:
        A LazyFrame: ``patient_id`` (with ``arm`` and ``point`` where the run has them) and
        ``onset_site``.
    """
    t = frames(run)
    keys = patient_keys(t)
    return (
        t["events"]
        .filter(pl.col("event") == "region_onset")
        .group_by(keys)
        .agg(pl.col("region").get(pl.col("month").arg_min()).cast(pl.String))
        .select(*keys, pl.col("region").replace_strict(ONSET_SITE, default="other")
                .alias("onset_site"))
    )


def patient_keys(t: Mapping[str, pl.LazyFrame]) -> list[str]:
    """The columns that name one patient's rows in every table: ``patient_id``, and the
    partitions ``arm`` (a trial holds every patient once per arm) and ``point`` (a sweep)."""
    names = set(t["patients"].collect_schema().names())
    return ["patient_id", *(c for c in ("arm", "point") if c in names)]


#: Patients a per-patient query handles at a time (:func:`patient_batches`): its per-patient
#: rows, a few hundred bytes each in polars' group-by, then take tens of MB whatever the run.
PATIENT_BATCH = 100_000


def patient_batches(run: Run, size: int | None = None) -> Iterator[dict[str, pl.LazyFrame]]:
    """The run's tables restricted to batches of ``size`` consecutive patient ids (default
    :data:`PATIENT_BATCH`), every table filtered alike, so a query that works patient by
    patient can run batch by batch in bounded memory and combine the results. A run without
    patients yields itself once."""
    t = frames(run)
    size = PATIENT_BATCH if size is None else size
    lo, hi = t["patients"].select(
        pl.col("patient_id").min().alias("lo"), pl.col("patient_id").max().alias("hi")
    ).collect(engine=ENGINE).row(0)
    if lo is None:
        yield dict(t)
        return
    for first in range(lo, hi + 1, size):
        batch = pl.col("patient_id").is_between(first, first + size - 1)
        yield {name: lf.filter(batch) for name, lf in t.items()}


def patient_columns(run: Run, by: Sequence[str] = ()) -> list[str]:
    """The columns naming one patient (:func:`patient_keys`: ``patient_id``, and ``arm`` or
    ``point`` where the run has them), then the ``by`` columns not among them."""
    return list(dict.fromkeys([*patient_keys(frames(run)), *by]))


def group_columns(by: str | Sequence[str] | None) -> list[str]:
    """``by`` as a list of column names (``None`` -> no grouping)."""
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


_CATEGORIES = {
    "arm",
    "phenotype",
    "onset_region",
    "onset_side",
    "death_cause",
    "final_diagnosis",
    "muscle",
    "region",
    "side",
    "diagnosis",
    "event",
    "detail",
    "tone",
    "jaw_jerk",
    "dysarthria",
}


def strings(lf: pl.LazyFrame, columns: Sequence[str]) -> pl.LazyFrame:
    """``lf`` with the category columns among ``columns`` cast to plain strings."""
    return lf.with_columns(pl.col(c).cast(pl.String) for c in columns if c in _CATEGORIES)


def aggregate(lf: pl.LazyFrame, by: Sequence[str], *aggs: pl.Expr) -> pl.LazyFrame:
    """``lf.group_by(by).agg(aggs)``, or one row of ``aggs`` when ``by`` is empty."""
    return lf.group_by(list(by)).agg(*aggs) if by else lf.select(*aggs)
