"""Parquet dataset on disk: atomic hive-partitioned chunk writes, the manifest, resume bookkeeping.

Layout of a run folder ``DIR``::

    DIR/manifest.json                                  run record (see :class:`Manifest`)
    DIR/scenario.toml                                  the scenario text, overrides applied
    DIR/<table>/arm=<arm>/chunk=<k:05d>/part-0.parquet one file per table, arm and chunk

A run of several scenarios into one folder (a sweep, :mod:`progression.sweep`) puts a partition
prefix before ``arm``, e.g. ``DIR/<table>/point=3/arm=<arm>/chunk=<k>/``; chunk numbers count
across the whole folder (the manifest's chunk index), so a chunk number names one folder per
table and arm whatever the prefix.

The partition columns (``arm``, ``chunk``, any prefix) live in the path only (hive convention),
never inside the files. Every Parquet file is first written under ``DIR/_tmp/`` (same
filesystem), flushed to disk and then ``os.replace``-d into place, so a reader never sees half a
file. The temporary files live outside the table folders on purpose: polars refuses a table
folder that holds any file other than ``*.parquet`` (hidden or not), so a leftover from a crash
there would break every reader.

Completion protocol: workers write a chunk's files and return a small record; only the client
process (the one that called ``runner.run``) writes ``manifest.json``, always whole (temporary
file + ``os.replace``). A chunk is complete when, and only when, the manifest lists it, which
happens after all its files are in place. One writer means no locks and no merge step (file locks
are unreliable on the network filesystems clusters share); the price is that chunks written but
not yet recorded when the client dies are redone on ``--resume``, after
:func:`remove_incomplete` has deleted their leftovers. This module computes no physiology.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TABLES: tuple[str, ...] = ("patients", "visits", "muscles", "events", "scans")
"""Tables a chunk may produce; ``scans`` only when the scenario records them."""
PARTITIONS: tuple[str, ...] = ("arm", "chunk")
MANIFEST = "manifest.json"
TMP_DIR = "_tmp"
SCENARIO_COPY = "scenario.toml"
PART = "part-0.parquet"
MANIFEST_FORMAT = 1

META_SCENARIO = "progression.scenario"
META_HASH = "progression.scenario_sha256"
META_VERSION = "progression.version"

_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.+-]+")
_TMP_SUFFIX = ".tmp"


def check_partition_value(value: str) -> str:
    """Return ``value`` if it can be a hive partition value as is, else raise ValueError.

    Allowed: letters, digits and ``_ . + -`` (no escaping needed, so every reader agrees).
    """
    if not _SAFE_VALUE.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"arm name {value!r} must use only letters, digits and _ . + -")
    return value


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is empty or hive levels such as ``point=3``, else ValueError."""
    for level in prefix.split("/") if prefix else ():
        key, sep, value = level.partition("=")
        if not sep or not _SAFE_VALUE.fullmatch(key) or not _SAFE_VALUE.fullmatch(value):
            raise ValueError(f"partition prefix {prefix!r} must be levels like point=3")
    return prefix


def chunk_dirname(chunk: int) -> str:
    """Folder name of chunk ``chunk``: ``chunk=00007``."""
    return f"chunk={chunk:05d}"


def file_metadata(scenario_text: str, scenario_hash: str, version: str) -> dict[str, str]:
    """Key/value metadata stored in every Parquet file (no wall-clock times, by design)."""
    return {META_SCENARIO: scenario_text, META_HASH: scenario_hash, META_VERSION: version}


# ----------------------------------------------------------------------------------- atomic files


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{_TMP_SUFFIX}")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms/filesystems cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _atomic_file(path: Path, tmp: Path | None = None) -> Iterator[BinaryIO]:
    """A temporary file for ``path`` (default: hidden, beside it); once the block succeeds it is
    flushed, fsynced and renamed into place, and on any error it is removed."""
    tmp = _tmp_name(path) if tmp is None else Path(tmp)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    with _atomic_file(path) as f:
        f.write(data)
    _fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """UTF-8 text version of :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_table_atomic(path: Path, table: pa.Table, tmp: Path | None = None) -> int:
    """Write ``table`` as zstd Parquet at ``path`` atomically; return the file size in bytes.

    ``tmp`` is the temporary file (same filesystem as ``path``); default: hidden, beside ``path``.
    """
    path = Path(path)
    with _atomic_file(path, tmp) as f:
        pq.write_table(table, f, compression="zstd")
    return path.stat().st_size


# ------------------------------------------------------------------------------------ chunk files


def encode_categories(table: pa.Table) -> pa.Table:
    """Dictionary-encode every string column (categories: muscle, region, side, diagnosis, ...)."""
    columns = []
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.dictionary_encode(col.cast(pa.string()))
        columns.append(col)
    return pa.Table.from_arrays(columns, names=table.column_names, metadata=table.schema.metadata)


def _split_by_arm(table: pa.Table, arms: tuple[str, ...]) -> dict[str, pa.Table]:
    """``{arm: rows of that arm without the arm column}``, including empty tables for ``arms``."""
    arm_col = table["arm"]
    if pa.types.is_dictionary(arm_col.type):
        arm_col = arm_col.cast(pa.string())
    body = table.drop_columns(["arm"])
    present = [a for a in pc.unique(arm_col).to_pylist() if a is not None]
    if arm_col.null_count:
        raise ValueError("arm column has nulls")
    out: dict[str, pa.Table] = {}
    for arm in dict.fromkeys([*arms, *sorted(present)]):
        out[arm] = body.filter(pc.equal(arm_col, arm)) if arm in present else body.slice(0, 0)
    return out


def write_chunk(
    out: Path,
    chunk: int,
    tables: dict[str, pa.Table],
    *,
    metadata: dict[str, str],
    arms: tuple[str, ...] = (),
    prefix: str = "",
) -> int:
    """Write one chunk's tables as ``out/<table>/[prefix/]arm=<arm>/chunk=<k>/part-0.parquet``.

    Args:
        out: run folder.
        chunk: chunk number k.
        tables: ``{table name: Arrow table}``; each must have an ``arm`` string column and no
            ``chunk`` column.
        metadata: key/value metadata for every file (see :func:`file_metadata`).
        arms: arms that get a file even when they have no rows (keeps the layout regular and the
            schema discoverable in every chunk).
        prefix: hive levels before ``arm=`` (e.g. ``point=3``; see :func:`check_prefix`).

    Returns:
        Bytes written.
    """
    out = Path(out)
    check_prefix(prefix)
    tmp_dir = out / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, table in tables.items():
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
        if "arm" not in table.column_names:
            raise ValueError(f"table {name!r} has no 'arm' column")
        if "chunk" in table.column_names:
            raise ValueError(f"table {name!r} must not carry the 'chunk' partition column")
        extra = {k.encode(): v.encode() for k, v in metadata.items()}
        meta = {**(table.schema.metadata or {}), **extra}
        for arm, part in _split_by_arm(table, arms).items():
            arm_dir = f"arm={check_partition_value(arm)}"
            folder = out / name / prefix / arm_dir / chunk_dirname(chunk)
            folder.mkdir(parents=True, exist_ok=True)
            part = encode_categories(part).replace_schema_metadata(meta)
            tmp = tmp_dir / f"{chunk_dirname(chunk)}.{name}.arm={arm}.{uuid.uuid4().hex[:12]}.tmp"
            written += write_table_atomic(folder / PART, part, tmp)
    return written


def chunk_dirs(out: Path) -> dict[int, list[Path]]:
    """``{k: [every out/<table>/[prefix/]arm=*/chunk=k folder]}`` found on disk."""
    found: dict[int, list[Path]] = {}
    for name in TABLES:
        for arm_dir in sorted((Path(out) / name).glob("**/arm=*")):
            for d in sorted(arm_dir.glob("chunk=*")):
                try:
                    k = int(d.name.removeprefix("chunk="))
                except ValueError:
                    continue
                found.setdefault(k, []).append(d)
    return found


def clear_chunk(out: Path, chunk: int) -> None:
    """Delete every file of chunk ``chunk``, temporary ones included (before (re)writing it)."""
    for d in chunk_dirs(out).get(chunk, []):
        shutil.rmtree(d, ignore_errors=True)
    for tmp in (Path(out) / TMP_DIR).glob(f"{chunk_dirname(chunk)}.*"):
        tmp.unlink(missing_ok=True)


def remove_incomplete(out: Path, complete: set[int]) -> list[Path]:
    """Delete chunk folders not in ``complete`` and all temporary files; return what went.

    Call it only while no chunk is being written (before a run's tasks start).
    """
    out = Path(out)
    removed: list[Path] = []
    if (out / TMP_DIR).exists():
        shutil.rmtree(out / TMP_DIR)
        removed.append(out / TMP_DIR)
    for k, dirs in chunk_dirs(out).items():
        if k not in complete:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
    for tmp in out.rglob(f".*{_TMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def missing_files(
    out: Path, chunk: int, tables: list[str], arms: list[str], prefix: str = ""
) -> list[Path]:
    """Files :func:`write_chunk` writes for ``chunk`` (every table x arm) that are not there."""
    paths = [Path(out) / t / prefix / f"arm={a}" / chunk_dirname(chunk) / PART
             for t in tables for a in arms]
    return [p for p in paths if not p.is_file()]


def remove_tmp(out: Path) -> None:
    """Delete ``out/_tmp`` if it is empty (a finished run leaves no trace of it)."""
    try:
        (Path(out) / TMP_DIR).rmdir()
    except OSError:
        pass


def dir_size(path: Path) -> int:
    """Total bytes of the regular files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def is_empty_dir(path: Path) -> bool:
    """True if ``path`` does not exist or is an empty folder."""
    path = Path(path)
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def clear_dir(path: Path) -> None:
    """Delete the contents of folder ``path`` (not the folder itself)."""
    for p in Path(path).iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


# ----------------------------------------------------------------------------------------- manifest


def _rate(amount: float, seconds: float) -> float:
    return amount / seconds if seconds > 0 else 0.0


@dataclass
class ChunkRecord:
    """What a worker sends back after writing a chunk (small by design).

    Attributes:
        chunk: chunk number k.
        first: first patient id of the chunk.
        stop: one past its last patient id.
        unit_steps: motor-unit-steps simulated (units of living patients x months).
        patient_years: simulated follow-up in patient-years, or None if the engine does not say.
        bytes: bytes of Parquet written.
        seconds: wall time of simulate + write on the worker, s.
        worker: where it ran (host:pid).
        timings: seconds per engine phase, if the engine reports them.
        tables: names of the tables written.
    """

    chunk: int
    first: int
    stop: int
    unit_steps: int
    patient_years: float | None
    bytes: int
    seconds: float
    worker: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)

    @property
    def patients(self) -> int:
        return self.stop - self.first


@dataclass
class Manifest:
    """The run record in ``DIR/manifest.json``; only the client process writes it.

    Attributes:
        scenario_hash: sha256 hex of the scenario text (after command-line overrides).
        version: ``progression.__version__`` that wrote the run.
        scenario_path: the scenario file as given.
        patients: cohort size.
        seed: cohort seed.
        arms: arm names.
        chunk_size: patients per chunk.
        chunks: ``[first, stop)`` patient-id range of each chunk, index = k.
        prefixes: each chunk's partition prefix (e.g. ``point=3``) when the run holds several
            scenarios (a sweep); empty for a plain run.
        completed: records of complete chunks, sorted by k.
        started: ISO time the first session started (UTC).
        finished: ISO time the last chunk was recorded, or None while incomplete.
        sessions: one entry per ``run`` call (start, end, status, workers, chunks and wall time).
        throughput: totals and rates over all sessions (see :meth:`update_throughput`).
    """

    scenario_hash: str
    version: str
    scenario_path: str
    patients: int
    seed: int
    arms: list[str]
    chunk_size: int
    chunks: list[list[int]]
    completed: list[dict[str, Any]] = field(default_factory=list)
    started: str | None = None
    finished: str | None = None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    throughput: dict[str, float] = field(default_factory=dict)
    format: int = MANIFEST_FORMAT
    prefixes: list[str] = field(default_factory=list)

    def prefix(self, chunk: int) -> str:
        """Partition prefix of chunk ``chunk`` (``""`` in a plain run)."""
        return self.prefixes[chunk] if self.prefixes else ""

    def completed_chunks(self) -> set[int]:
        """Numbers of the complete chunks."""
        return {int(c["chunk"]) for c in self.completed}

    def is_complete(self) -> bool:
        return len(self.completed_chunks()) == len(self.chunks)

    def mark_complete(self, record: ChunkRecord) -> None:
        """Record a chunk whose files are all in place (call :meth:`save` to make it count)."""
        if list(self.chunks[record.chunk]) != [record.first, record.stop]:
            raise ValueError(f"chunk {record.chunk} covers {self.chunks[record.chunk]}, not "
                             f"[{record.first}, {record.stop}]")
        self.completed = [c for c in self.completed if c["chunk"] != record.chunk]
        self.completed.append({**asdict(record), "patients": record.patients})
        self.completed.sort(key=lambda c: c["chunk"])

    def totals(self) -> dict[str, float]:
        """Sums over complete chunks: patients, unit_steps, patient_years, bytes, chunk_seconds."""
        recs = self.completed
        years = [c["patient_years"] for c in recs]
        return {
            "patients": sum(c["patients"] for c in recs),
            "unit_steps": sum(c["unit_steps"] for c in recs),
            "patient_years": None if any(y is None for y in years) else float(sum(years)),
            "bytes": sum(c["bytes"] for c in recs),
            "chunk_seconds": sum(c["seconds"] for c in recs),
        }

    def update_throughput(self) -> None:
        """Rates over complete chunks and the sessions' summed wall time (s)."""
        t = self.totals()
        wall = sum(s.get("wall_seconds", 0.0) for s in self.sessions)
        cpu = t["chunk_seconds"]
        self.throughput = {
            "wall_seconds": wall,
            "patients": t["patients"],
            "unit_steps": t["unit_steps"],
            "patient_years": t["patient_years"],
            "patients_per_second": _rate(t["patients"], wall),
            "unit_steps_per_second": _rate(t["unit_steps"], wall),
            "chunk_seconds": cpu,
            "unit_steps_per_chunk_second": _rate(t["unit_steps"], cpu),
        }
        for c in self.completed:  # engine phases, summed over chunks: "seconds.<phase>"
            for phase, seconds in c.get("timings", {}).items():
                key = f"seconds.{phase}"
                self.throughput[key] = self.throughput.get(key, 0.0) + seconds

    def to_json(self) -> str:
        """JSON with one line per key, and per item of the chunk and session lists."""
        lines = []
        for key, value in asdict(self).items():
            if isinstance(value, list) and value and isinstance(value[0], list | dict):
                text = "[\n" + ",\n".join(f"  {json.dumps(v)}" for v in value) + "\n ]"
            else:
                text = json.dumps(value)
            lines.append(f" {json.dumps(key)}: {text}")
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"manifest format {data.get('format')!r}, expected {MANIFEST_FORMAT}")
        return cls(**data)

    def save(self, out: Path) -> None:
        """Write ``out/manifest.json`` atomically."""
        write_text_atomic(Path(out) / MANIFEST, self.to_json())

    @classmethod
    def load(cls, out: Path) -> Manifest:
        """Read ``out/manifest.json`` (FileNotFoundError if absent, ValueError if unreadable)."""
        path = Path(out) / MANIFEST
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise ValueError(f"{path} is not a progression manifest: {e}") from e
