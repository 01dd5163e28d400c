"""The run record ``DIR/manifest.json``: the plan, which chunks are complete, and their files.

Only the process that owns the run (:mod:`progression.lock`) writes it, always whole (temporary
file, fsync, ``os.replace``). A chunk is complete when, and only when, the manifest lists it, with
every file it wrote: path (relative to ``DIR``), size in bytes and SHA-256. So a reader can tell
a whole run from a part (:meth:`Manifest.is_complete`), and a damaged file from a good one
(:func:`chunk_problem`): ``--resume`` redoes damaged chunks, ``progression verify`` checks a
whole run and ``analysis.open_run`` refuses a missing or truncated file.

The format (``"format": 2``) is plain JSON on purpose: ``analysis`` reads it without importing
the engine. Keys: ``format``, ``scenario_hash``, ``version``, ``scenario_path``, ``patients``,
``seed``, ``arms``, ``chunk_size``, ``chunks`` (``[first, stop)`` per chunk), ``prefixes``,
``completed`` (one record per complete chunk, with ``files``), ``started``, ``finished``,
``sessions`` and ``throughput``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from progression import lock
from progression.lock import LOCK
from progression.storage import MANIFEST, PART, TABLES, write_text_atomic

FORMAT = 2
"""Manifest format written here. Format 1 (progression 0.1) recorded no files."""


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


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
        files: every file written: ``{"path": relative POSIX path, "bytes": size,
            "sha256": hex digest}``.
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
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def patients(self) -> int:
        return self.stop - self.first


def chunk_problem(out: Path, record: dict[str, Any], checksum: bool = True) -> str | None:
    """What is wrong with the files of a complete chunk's ``record``, or None if nothing.

    Checks that every recorded file exists with its recorded size and (``checksum``) SHA-256.
    """
    for f in record.get("files", []):
        path = Path(out) / f["path"]
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{f['path']} is missing"
        except OSError as e:
            return f"{f['path']} cannot be read ({e.strerror or e})"
        if size != f["bytes"]:
            return f"{f['path']} is {size:,} bytes, the manifest recorded {f['bytes']:,}"
        if checksum:
            try:
                digest = sha256_file(path)
            except OSError as e:
                return f"{f['path']} cannot be read ({e.strerror or e})"
            if digest != f["sha256"]:
                return f"{f['path']} does not match its recorded SHA-256"
    return None


@dataclass
class Manifest:
    """The run record in ``DIR/manifest.json``; only the run's owner writes it.

    Attributes:
        scenario_hash: sha256 hex of the scenario (after command-line overrides).
        version: ``progression.__version__`` that wrote the run.
        scenario_path: the scenario file as given.
        patients: cohort size.
        seed: cohort seed.
        arms: arm names.
        chunk_size: patients per chunk.
        chunks: ``[first, stop)`` patient-id range of each chunk, index = k.
        prefixes: each chunk's partition prefix (e.g. ``point=3``) when the run holds several
            scenarios (a sweep); empty for a plain run.
        completed: records of complete chunks (:class:`ChunkRecord` as a dict), sorted by k.
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
    format: int = FORMAT
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
        self.forget(record.chunk)
        self.completed.append({**asdict(record), "patients": record.patients})
        self.completed.sort(key=lambda c: c["chunk"])

    def forget(self, chunk: int) -> None:
        """Count chunk ``chunk`` as not done (its files are to be written again)."""
        self.completed = [c for c in self.completed if c["chunk"] != chunk]
        self.finished = None

    def damaged(self, out: Path, checksum: bool = True) -> dict[int, str]:
        """``{chunk: problem}`` for the complete chunks whose files are not as recorded."""
        problems = {}
        for record in self.completed:
            problem = chunk_problem(out, record, checksum)
            if problem:
                problems[int(record["chunk"])] = problem
        return problems

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
        """Parse and check a manifest (ValueError, one line, if it is not one of this format)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got a JSON {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(
                f"manifest format {data.get('format')!r}, expected {FORMAT} (written by "
                f"progression {data.get('version', '?')})"
            )
        manifest = cls(**data)
        for record in manifest.completed:
            for f in record.get("files", []):
                rel = PurePosixPath(f["path"])
                if rel.is_absolute() or ".." in rel.parts:
                    raise ValueError(f"file path {f['path']!r} leaves the run folder")
        return manifest

    def save(self, out: Path) -> None:
        """Write ``out/manifest.json`` atomically."""
        write_text_atomic(Path(out) / MANIFEST, self.to_json())

    @classmethod
    def load(cls, out: Path) -> Manifest:
        """Read ``out/manifest.json`` (FileNotFoundError if absent, ValueError if unreadable)."""
        path = Path(out) / MANIFEST
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError, UnicodeDecodeError,
                ValueError) as e:
            raise ValueError(f"{path} is not a progression manifest: {e}") from e


def is_run_manifest(path: Path) -> bool:
    """Whether ``path`` is the manifest of a progression run of any format (a JSON object with
    an integer ``format``, a ``scenario_hash`` and a ``chunks`` list)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(data, dict) and isinstance(data.get("format"), int)
            and isinstance(data.get("scenario_hash"), str) and isinstance(data.get("chunks"), list))


def enclosing_run(path: Path) -> Path | None:
    """The run folder that ``path`` lies inside (an ancestor holding a progression manifest or
    lock), or None."""
    for folder in Path(path).resolve().parents:
        if (folder / LOCK).is_file() or is_run_manifest(folder / MANIFEST):
            return folder
    return None


@dataclass
class Verification:
    """What :func:`verify_run` found.

    Attributes:
        manifest: the run's manifest.
        damaged: ``{chunk: problem}`` of complete chunks whose files are not as recorded.
        unlisted: Parquet files in the table folders that no complete chunk lists (leftovers of
            unrecorded chunks; readers ignore them, ``--resume`` deletes them).
        files: files checked.
        bytes: their recorded size in all.
        owner: the lock's record if a process owns the folder now (a run in progress).
    """

    manifest: Manifest
    damaged: dict[int, str]
    unlisted: list[str]
    files: int
    bytes: int
    owner: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        """Complete and undamaged."""
        return self.manifest.is_complete() and not self.damaged


def verify_run(out: Path, checksum: bool = True) -> Verification:
    """Check every file the manifest of run ``out`` lists (size, and SHA-256 if ``checksum``).

    Raises:
        FileNotFoundError: no manifest; ValueError: an unreadable one.
    """
    out = Path(out)
    manifest = Manifest.load(out)
    listed = {f["path"] for record in manifest.completed for f in record.get("files", [])}
    on_disk = {p.relative_to(out).as_posix() for name in TABLES
               for p in (out / name).glob(f"**/{PART}")}
    return Verification(
        manifest=manifest,
        damaged=manifest.damaged(out, checksum),
        unlisted=sorted(on_disk - listed),
        files=len(listed),
        bytes=sum(f["bytes"] for record in manifest.completed for f in record.get("files", [])),
        owner=lock.owner(out),
    )
