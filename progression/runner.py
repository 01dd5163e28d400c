"""Run a scenario's cohort in chunks of patients, in process or on dask, into a Parquet dataset.

``run`` plans the cohort into chunks (chunk k covers patient ids ``[k*size, (k+1)*size)``),
submits one task per chunk that simulates the chunk AND writes its files (so only a small
:class:`~progression.storage.ChunkRecord` travels back), records each finished chunk in the
manifest, draws a progress bar on a terminal and returns a :class:`RunSummary`. It computes no
physiology: ``simulate`` (default ``progression.model.simulate_chunk``) does, and a patient's
output depends only on (scenario, patient id), so the tables are identical whatever the workers or
chunk size. Where the code runs:

- ``workers=1`` (and no scheduler): in this process, no cluster;
- ``scheduler="tcp://host:port"``: an existing dask cluster; ``out`` must be on a filesystem the
  workers share with this process;
- otherwise: a ``distributed.LocalCluster`` of ``workers`` processes (default: the usable cores),
  one thread each.

``parts`` runs several scenarios of the same cohort size into one folder as one job, each under
a partition prefix (a sweep's points, :mod:`progression.studies.sweep`): the chunks of all parts
form one plan, one manifest, one progress bar.

The run owns its folder from start to end (:mod:`progression.lock`): a second process is refused
with the owner's name, and the workers stop writing if the run loses the folder. Only this
(client) process writes the manifest (:mod:`progression.manifest`), at most once per
:data:`MANIFEST_INTERVAL` and at the end. Ctrl-C or SIGTERM cancels the tasks, closes the
cluster, records the session as interrupted and raises :class:`RunInterrupted`; ``resume=True``
then checks every file the manifest lists (size and SHA-256) and redoes the chunks it does not
list or whose files are damaged. ``overwrite=True`` replaces only a folder that is recognisably a
run of this program and holds nothing else.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from progression import lock, storage
from progression.manifest import ChunkRecord, Manifest, enclosing_run, is_run_manifest

SAFE_CHUNK_SIZE = 500
"""Patients per chunk when the engine cannot estimate its memory per patient."""
CHUNKS_PER_WORKER = 4
"""Aim for at least this many chunks per worker: load balance, progress and cheap retries."""
MEMORY_FRACTION = 0.5
"""Share of the available memory that all workers' chunks together may use."""
MAX_CHUNK_SIZE = 20_000
"""Upper bound on patients per chunk (bounds the work lost when a worker dies)."""
MANIFEST_INTERVAL = 1.0
"""Seconds between manifest rewrites while chunks complete (always written at the end)."""
MAX_CHUNKS = 100_000
"""Most chunks one run may plan (the manifest lists each; 10^9 patients fit at the default
sizes)."""
RETRIES = 2
"""Extra attempts for a chunk whose task raised (dask ``retries``). A chunk whose worker process
died is rescheduled by dask itself (``distributed.scheduler.allowed-failures``, default 3)."""

Simulate = Callable[[Any, np.ndarray], Any]


class RunError(Exception):
    """A run cannot start or go on; the message is one line, fit for the terminal."""


class RunInterrupted(RunError):
    """The run was stopped (Ctrl-C or SIGTERM); the folder is left resumable.

    Attributes:
        signum: the signal that stopped it (``signal.SIGINT`` or ``signal.SIGTERM``).
    """

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it ends the run as Ctrl-C does."""


@dataclass(frozen=True)
class RunSummary:
    """What a run did.

    Attributes:
        out: run folder.
        patients: cohort size.
        chunks: chunks in the plan.
        chunks_run: chunks simulated by this call (the others were complete already).
        patients_run: patients simulated by this call.
        patient_years: simulated follow-up of the whole cohort, patient-years (None if unknown).
        wall_seconds: wall time of this call, s.
        unit_steps: motor-unit-steps simulated by this call.
        output_bytes: size of the run folder, bytes.
        damaged: chunks that the manifest listed as complete but whose files were damaged
            (missing, truncated, changed), redone by this call: ``{chunk: what was wrong}``.
    """

    out: Path
    patients: int
    chunks: int
    chunks_run: int
    patients_run: int
    patient_years: float | None
    wall_seconds: float
    unit_steps: int
    output_bytes: int
    damaged: dict[int, str] = field(default_factory=dict)

    @property
    def unit_steps_per_second(self) -> float:
        return self.unit_steps / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def format(self) -> str:
        """Two lines for the terminal."""
        resumed = self.patients - self.patients_run
        years = "n/a" if self.patient_years is None else f"{self.patient_years:,.0f}"
        return (
            f"{self.patients:,} patients in {self.chunks} chunks -> {self.out}"
            + (f" ({resumed:,} already done)" if resumed else "")
            + f"\npatient-years {years} | wall {_hms(self.wall_seconds)}"
            f" | {self.unit_steps_per_second:.3g} unit-steps/s"
            f" | output {_size(self.output_bytes)}"
            + "".join(f"\nredone chunk {k}: {why}" for k, why in sorted(self.damaged.items()))
        )

    __str__ = format


# ------------------------------------------------------------------------------------- planning


def plan_chunks(n_patients: int, chunk_size: int) -> list[range]:
    """Patient-id ranges of the chunks: chunk k covers ``[k*size, min(n, (k+1)*size))``.

    Raises:
        ValueError: negative or zero sizes, or more than :data:`MAX_CHUNKS` chunks.
    """
    if n_patients < 0 or chunk_size < 1:
        raise ValueError(f"need n_patients >= 0, chunk_size >= 1; got {n_patients}, {chunk_size}")
    if -(-n_patients // chunk_size) > MAX_CHUNKS:
        raise ValueError(
            f"{n_patients:,} patients in chunks of {chunk_size:,} make "
            f"{-(-n_patients // chunk_size):,} chunks, more than {MAX_CHUNKS:,}: use a larger "
            "--chunk-size"
        )
    return [range(a, min(a + chunk_size, n_patients)) for a in range(0, n_patients, chunk_size)]


def usable_cores() -> int:
    """Cores this process may use (affinity and cgroup quota respected)."""
    from dask.system import CPU_COUNT

    return max(1, int(CPU_COUNT))


def _available_memory() -> int:
    """Bytes of memory available now (psutil comes with distributed)."""
    import psutil

    return int(psutil.virtual_memory().available)


def _bytes_per_patient(scenario: Any) -> int | None:
    """Engine estimate of peak bytes per patient of a chunk, if it offers one.

    The engine may expose ``progression.model.bytes_per_patient(scenario) -> int``.
    """
    from progression.scenario import Scenario

    if not isinstance(scenario, Scenario):  # a test's stand-in
        return None
    from progression.model import bytes_per_patient

    return bytes_per_patient(scenario)


def default_chunk_size(
    scenario: Any,
    *,
    workers: int | None = None,
    memory_per_worker: float | None = None,
    patients: int | None = None,
    chunks_per_worker: int = CHUNKS_PER_WORKER,
) -> int:
    """Patients per chunk chosen from the cohort, the workers and their memory.

    ``size = min(ceil(patients / (chunks_per_worker * workers)), memory cap, MAX_CHUNK_SIZE)``
    where the memory cap is ``MEMORY_FRACTION * memory_per_worker / bytes per patient`` when the
    engine estimates bytes per patient, else :data:`SAFE_CHUNK_SIZE`. At least 1.

    Args:
        scenario: the scenario (``scenario.cohort.patients`` is read).
        workers: parallel workers (default: usable cores).
        memory_per_worker: bytes one worker may use (default: available memory / workers).
        patients: patients of the whole job (default ``scenario.cohort.patients``; a sweep
            passes points x patients, and then caps the size at one point's cohort).
        chunks_per_worker: chunks per worker to aim at (fewer: less overhead per patient,
            coarser load balance).
    """
    workers = workers or usable_cores()
    per_patient = _bytes_per_patient(scenario)
    if per_patient:
        memory = memory_per_worker or _available_memory() / workers
        cap = int(MEMORY_FRACTION * memory / per_patient)
    else:
        cap = SAFE_CHUNK_SIZE
    patients = scenario.cohort.patients if patients is None else patients
    balanced = math.ceil(patients / (chunks_per_worker * workers))
    return max(1, min(balanced, cap, MAX_CHUNK_SIZE))


# ------------------------------------------------------------------------------- the chunk task


def _default_simulate() -> Simulate:
    from progression.model import simulate_chunk

    return simulate_chunk


def _version() -> str:
    import progression

    return str(getattr(progression, "__version__", "unknown"))


def run_chunk(
    scenario: Any,
    out: str,
    chunk: int,
    first: int,
    stop: int,
    simulate: Simulate,
    prefix: str = "",
    token: str | None = None,
) -> ChunkRecord:
    """Simulate patients ``[first, stop)`` and write them as chunk ``chunk`` (runs on a worker).

    ``prefix`` is the chunk's partition prefix (e.g. ``point=3``; empty in a plain run).
    ``token`` is the run's lock token: the folder is touched only while the run still owns it
    (checked before deleting an earlier attempt's files and before writing).

    Any files of an earlier attempt at this chunk are deleted first.
    """
    start = time.perf_counter()
    _check_owner(Path(out), token, chunk)
    storage.clear_chunk(Path(out), chunk)
    result = simulate(scenario, np.arange(first, stop, dtype=np.int64))
    meta = storage.file_metadata(scenario.hash, _version())
    _check_owner(Path(out), token, chunk)
    files = storage.write_chunk(
        Path(out), chunk, result.tables, metadata=meta, arms=tuple(scenario.arm_names),
        prefix=prefix,
    )
    years = getattr(result, "patient_years", None)
    record = ChunkRecord(
        chunk=chunk,
        first=first,
        stop=stop,
        unit_steps=int(result.unit_steps),
        patient_years=None if years is None else float(years),
        bytes=sum(f["bytes"] for f in files),
        seconds=time.perf_counter() - start,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        tables=sorted(result.tables),
        timings={k: float(v) for k, v in (getattr(result, "timings", None) or {}).items()},
        files=files,
    )
    del result
    release_memory()
    return record


def _check_owner(out: Path, token: str | None, chunk: int) -> None:
    """Raise :class:`RunError` if the run with ``token`` no longer owns ``out``."""
    if token is not None and not lock.holds(out, token):
        raise RunError(
            f"chunk {chunk} not written: {out} is no longer owned by the run that planned it"
        )


#: Whether this process is the runner's own (the command line), see :func:`claim_process`.
_OWN_PROCESS = False


def claim_process() -> None:
    """Declare this process the runner's own (``progression run`` and ``sweep`` do): after its
    first chunk, as on a dask worker, its long-lived objects are frozen out of the garbage
    collector (:func:`release_memory`). A program that calls :func:`run` keeps its collector as
    it is unless it says so."""
    global _OWN_PROCESS
    _OWN_PROCESS = True


def _on_worker() -> bool:
    """Whether this runs as a task on a dask worker."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def release_memory() -> None:
    """Give a finished chunk's memory back to the system, so a worker's peak stays one chunk's
    whatever the number of chunks it runs: collect the cohort's reference cycles (a mesa model
    holds its own wrapped ``step``), empty Arrow's pool and trim glibc's heap (where there
    is one). On a dask worker (or in a process that :func:`claim_process` claimed), the
    objects that survive the first chunk (modules, caches) are then frozen out of the collector
    (``gc.freeze``), so later collections scan only what the chunks made (5 ms instead of 100 ms
    or more); a caller's own process is left as it is."""
    import ctypes
    import gc

    import pyarrow as pa

    gc.collect()
    if not gc.get_freeze_count() and (_OWN_PROCESS or _on_worker()):
        gc.freeze()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc
        pass


# --------------------------------------------------------------------------------- preparation


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_manifest(scenario: Any, chunk_size: int, prefixes: tuple[str, ...]) -> Manifest:
    """The plan: the chunks of each part in turn (one part, prefix ``""``, in a plain run)."""
    chunks = plan_chunks(scenario.cohort.patients, chunk_size)
    return Manifest(
        scenario_hash=scenario.hash,
        version=_version(),
        scenario_path=str(scenario.path),
        patients=int(scenario.cohort.patients) * len(prefixes),
        seed=int(scenario.cohort.seed),
        arms=list(scenario.arm_names),
        chunk_size=chunk_size,
        chunks=[[r.start, r.stop] for _ in prefixes for r in chunks],
        started=_now(),
        prefixes=[] if prefixes == ("",) else [p for p in prefixes for _ in chunks],
    )


def _check_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse what no flag allows, before this run takes the folder (so nothing of ours is left
    in a folder that is not a run): a file, a folder inside a run, a non-empty folder without
    a flag or that is not a run, and (``overwrite``) a run holding entries it did not write."""
    if resume and overwrite:
        raise RunError("choose one of --resume and --overwrite, not both")
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} exists and is not a folder")
    outer = enclosing_run(out)
    if outer is not None:
        raise RunError(
            f"{out} is inside the run {outer}: a run there would make it unreadable; choose an "
            "--out outside it"
        )
    if storage.is_empty_dir(out, ignore=(lock.LOCK, storage.TMP_DIR)):
        return
    if not (resume or overwrite):
        raise RunError(
            f"{out} is not empty: add --resume to continue the run in it "
            "or --overwrite to replace it"
        )
    if not is_run_manifest(out / storage.MANIFEST):
        raise RunError(
            f"{out} is not empty and holds no progression {storage.MANIFEST}, so it is not a "
            "progression run; refusing to resume or overwrite it (choose another --out)"
        )
    foreign = storage.foreign_entries(out) if overwrite else []
    if foreign:
        raise RunError(
            f"{out} holds {foreign[0].relative_to(out)}"
            + (f" and {len(foreign) - 1} more entries" if len(foreign) > 1 else "")
            + " that progression did not write; refusing to overwrite it (move them away or "
            "choose another --out)"
        )


def _prepare(
    scenario: Any,
    out: Path,
    chunk_size: int | None,
    choose_size: Callable[[], int],
    resume: bool,
    overwrite: bool,
    prefixes: tuple[str, ...] = ("",),
) -> tuple[Manifest, dict[int, str]]:
    """Prepare the folder this run owns; return the manifest to continue (saved on disk) and
    the complete chunks found damaged (``{chunk: problem}``, to be redone).

    ``choose_size()`` gives the chunk size of a new run when ``chunk_size`` is None.
    """
    has_manifest = (out / storage.MANIFEST).is_file()
    if overwrite and has_manifest:
        if storage.foreign_entries(out):  # appeared since the check: still the user's
            raise RunError(f"{out} changed while starting; nothing was deleted, try again")
        storage.clear_run(out)
        has_manifest = False
    if resume and has_manifest:
        try:
            manifest = Manifest.load(out)
        except ValueError as e:
            raise RunError(f"cannot resume: {e}; use --overwrite to start again") from e
        if manifest.scenario_hash != scenario.hash:
            raise RunError(
                f"cannot resume {out}: its scenario (sha256 {manifest.scenario_hash[:12]}) differs "
                f"from this one ({scenario.hash[:12]}); use --overwrite to start again"
            )
        if manifest.version != _version():
            raise RunError(
                f"cannot resume {out}: written by progression {manifest.version}, this is "
                f"{_version()}; use --overwrite to start again"
            )
        if chunk_size is not None and chunk_size != manifest.chunk_size:
            raise RunError(
                f"cannot resume {out} with chunk size {chunk_size}: it was planned with "
                f"{manifest.chunk_size} (leave --chunk-size out)"
            )
        damaged = manifest.damaged(out)
        for k in damaged:
            manifest.forget(k)
        storage.remove_incomplete(out, manifest.completed_chunks())
        manifest.save(out)
        return manifest, damaged
    try:
        manifest = _new_manifest(scenario, chunk_size or choose_size(), prefixes)
    except ValueError as e:  # too many chunks
        raise RunError(str(e)) from None
    storage.write_text_atomic(out / storage.SCENARIO_COPY, scenario.text)
    manifest.save(out)
    return manifest, {}


# ----------------------------------------------------------------------------------- execution


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes start, so they inherit it ignored.

    A Ctrl-C on a terminal reaches the whole process group; the workers should not die with
    tracebacks of their own but be shut down by this process, which alone handles the Ctrl-C.
    """
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _in_process(tasks: list[tuple[Any, ...]]) -> Iterator[ChunkRecord]:
    for args in tasks:
        yield run_chunk(*args)


def _connect(scheduler: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``scheduler``, or a RunError."""
    from distributed import Client

    try:
        return Client(scheduler, timeout="30s")
    except (OSError, ValueError) as e:  # TimeoutError is an OSError
        raise RunError(f"cannot reach the dask scheduler at {scheduler}: {e}") from e


def cluster_resources(scheduler: str) -> tuple[int | None, float | None]:
    """(worker threads, smallest memory limit per thread in bytes) of a running dask cluster."""
    with _connect(scheduler) as client:
        workers = list(client.scheduler_info(n_workers=-1)["workers"].values())
    threads = sum(w.get("nthreads", 1) for w in workers)
    limits = [w["memory_limit"] / max(1, w.get("nthreads", 1))
              for w in workers if w.get("memory_limit")]
    return (threads or None), (min(limits) if limits else None)


#: Settings of the local cluster: chunks run for seconds, so the workers' statistical profiler
#: (a stack sample every 10 ms) and the 20 ms event-loop ticks and 100 ms memory polls of every
#: process only take CPU from the two workers on a small machine (about 5% of chunk time here).
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}


def local_cluster(workers: int | None = None) -> Any:
    """The ``distributed.LocalCluster`` that :func:`run` starts without a scheduler:
    ``workers`` single-threaded processes (default: the usable cores). Use it as a context
    manager; pass its ``scheduler_address`` as ``scheduler`` to share it between runs.

    Raises:
        RunError: the worker processes cannot start.
    """
    import dask
    from distributed import LocalCluster

    try:
        with _sigint_ignored(), dask.config.set(LOCAL_CLUSTER_CONFIG):
            return LocalCluster(
                n_workers=workers or usable_cores(),
                threads_per_worker=1,
                processes=True,
                dashboard_address="127.0.0.1:0",  # no clash with a dashboard on :8787
                silence_logs=logging.ERROR,
            )
    except RuntimeError as e:
        raise RunError(
            f"could not start local dask workers ({e}); a script that calls run() must "
            "do so under `if __name__ == '__main__':`"
        ) from e


def _on_dask(
    tasks: list[tuple[Any, ...]], workers: int | None, scheduler: str | None
) -> Iterator[ChunkRecord]:
    """Run the tasks on a dask cluster, yielding records as chunks complete.

    A task that raises is retried :data:`RETRIES` times; a chunk whose worker process dies is
    rescheduled by dask (up to ``distributed.scheduler.allowed-failures`` times, default 3).
    Closing the generator (end, error or Ctrl-C) cancels what is left and closes the client and
    any LocalCluster it started.
    """
    import uuid

    from distributed import Client, KilledWorker, as_completed

    with ExitStack() as stack:
        if scheduler is None:
            client = stack.enter_context(Client(stack.enter_context(local_cluster(workers))))
        else:
            client = stack.enter_context(_connect(scheduler))
        tag = uuid.uuid4().hex[:8]
        futures = [
            client.submit(run_chunk, *args, key=f"progression-chunk-{args[2]:05d}-{tag}",
                          retries=RETRIES, pure=False)
            for args in tasks
        ]
        stack.callback(_cancel_quietly, client, futures)
        for future in as_completed(futures):
            try:
                record = future.result()
            except KilledWorker as e:
                raise RunError(
                    f"a chunk killed its worker process repeatedly (out of memory? try a smaller "
                    f"--chunk-size): {e}"
                ) from e
            # Let the cluster forget the result now that it is here: a result still wanted
            # when the worker holding it dies is recomputed, which would delete and rewrite
            # files of a chunk the manifest already lists as complete.
            future.release()
            yield record


def _cancel_quietly(client: Any, futures: list[Any]) -> None:
    with suppress(Exception):
        client.cancel(futures)


class _Progress:
    """One-line progress bar on ``stream`` (patients done, rate, ETA), redrawn with ``\\r``."""

    def __init__(self, total: int, done: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.done, self.stream, self.enabled = total, done, stream, enabled
        self.start_done, self.start = done, time.monotonic()
        self.last_draw = 0.0
        self.draw(force=True)

    def update(self, patients: int) -> None:
        self.done += patients
        self.draw()

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last_draw < 0.1):
            return
        self.last_draw = now
        elapsed = now - self.start
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        eta = _hms((self.total - self.done) / rate) if rate > 0 else "--:--:--"
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(
            f"\r[{bar}] {self.done:,}/{self.total:,} patients | {rate:,.1f}/s | ETA {eta} "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def run(
    scenario: Any,
    out: str | os.PathLike[str],
    *,
    workers: int | None = None,
    chunk_size: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    simulate: Simulate | None = None,
    parts: list[tuple[str, Any]] | None = None,
    after: Callable[[], None] | None = None,
) -> RunSummary:
    """Simulate the scenario's cohort into the Parquet dataset ``out``.

    Args:
        scenario: a loaded ``Scenario`` (``path``, ``text``, ``hash``, ``cohort.patients``,
            ``cohort.seed``, ``arm_names``).
        out: run folder; must be empty or absent unless ``resume`` or ``overwrite``.
        workers: worker processes (1 = in this process, no cluster; default: usable cores).
            Ignored with ``scheduler``.
        chunk_size: patients per chunk (default :func:`default_chunk_size`; on resume, the
            planned one).
        scheduler: address of an existing dask scheduler, e.g. ``"tcp://10.0.0.1:8786"``.
        resume: keep the complete chunks of the run in ``out`` and redo the others.
        overwrite: delete the run in ``out`` first.
        progress: draw a progress bar on stderr (default: when stderr is a terminal).
        simulate: ``(scenario, patient_ids) -> ChunkResult`` (default
            ``progression.model.simulate_chunk``); must be picklable for dask.
        parts: ``(partition prefix, scenario)`` pairs simulated into ``out`` as one job, e.g.
            a sweep's ``("point=3", scenario of point 3)``; all with ``scenario``'s cohort size
            and arms. ``scenario`` then only identifies the job (its hash guards resume; its
            text is ``scenario.toml``). Default: ``[("", scenario)]``.
        after: called once every chunk is recorded, while this run still owns ``out`` (a
            sweep writes its points and summary there).

    Returns:
        A :class:`RunSummary`; ``str(summary)`` is the text to show the user.

    Raises:
        RunError: the folder or flags refuse the run (another process owns it, it is not a
            run, it lies inside a run, it holds files this program did not write), or a file
            cannot be written.
        RunInterrupted: Ctrl-C or SIGTERM; the cluster is closed and ``out`` can be resumed.
    """
    start = time.monotonic()
    out = Path(out).expanduser().resolve()
    simulate = simulate or _default_simulate()
    for arm in scenario.arm_names:
        try:
            storage.check_partition_value(arm)
        except ValueError as e:
            raise RunError(str(e)) from e
    if workers is not None and workers < 1:
        raise RunError(f"--workers must be at least 1, got {workers}")
    if chunk_size is not None and chunk_size < 1:
        raise RunError(f"--chunk-size must be at least 1, got {chunk_size}")
    parts = [("", scenario)] if parts is None else list(parts)
    part_of = dict(parts)
    for prefix, part in parts:
        if part.cohort.patients != scenario.cohort.patients or part.arm_names != scenario.arm_names:
            raise RunError(f"part {prefix!r} differs from the job in cohort size or arms")
        try:
            storage.check_prefix(prefix)
        except ValueError as e:
            raise RunError(str(e)) from e
    if len(part_of) != len(parts):
        raise RunError("parts must have distinct partition prefixes")
    total = scenario.cohort.patients * len(parts)

    def choose_size() -> int:
        if scheduler is None:
            size = default_chunk_size(scenario, workers=workers or usable_cores(), patients=total)
        else:
            threads, memory = cluster_resources(scheduler)
            size = default_chunk_size(
                scenario, workers=threads, memory_per_worker=memory, patients=total
            )
        return min(size, max(1, scenario.cohort.patients))

    try:
        _check_folder(out, resume, overwrite)
        created = not out.exists()
        try:
            token = lock.acquire(out)
        except lock.FolderInUse as e:
            raise RunError(str(e)) from None
    except OSError as e:
        raise RunError(_os_message(e, out)) from e
    try:
        with _sigterm_as_interrupt():
            return _run_owned(
                scenario, out, token, start, part_of, simulate, workers, chunk_size, scheduler,
                resume, overwrite, progress, after, choose_size,
            )
    except OSError as e:
        raise RunError(_os_message(e, out)) from e
    finally:
        lock.release(out, token)
        if created and storage.is_empty_dir(out):
            out.rmdir()


def _run_owned(
    scenario: Any, out: Path, token: str, start: float, part_of: dict[str, Any],
    simulate: Simulate, workers: int | None, chunk_size: int | None, scheduler: str | None,
    resume: bool, overwrite: bool, progress: bool | None, after: Callable[[], None] | None,
    choose_size: Callable[[], int],
) -> RunSummary:
    """:func:`run` once this process owns ``out``: prepare, run the chunks, record them."""
    manifest, damaged = _prepare(
        scenario, out, chunk_size, choose_size, resume, overwrite, tuple(part_of)
    )
    if {manifest.prefix(k) for k in range(len(manifest.chunks))} - set(part_of):
        raise RunError(f"cannot resume {out}: it was planned with other parts (points)")

    done = manifest.completed_chunks()
    tasks = [
        (part_of[manifest.prefix(k)], str(out), k, first, stop, simulate, manifest.prefix(k),
         token)
        for k, (first, stop) in enumerate(manifest.chunks)
        if k not in done
    ]
    session: dict[str, Any] = {
        "started": _now(), "finished": None, "status": "running", "workers": workers,
        "scheduler": scheduler, "chunks_run": 0, "patients_run": 0, "unit_steps": 0,
        "wall_seconds": 0.0, "damaged": {str(k): why for k, why in damaged.items()},
    }
    manifest.sessions.append(session)
    bar = _Progress(
        manifest.patients, manifest.totals()["patients"], sys.stderr,
        sys.stderr.isatty() if progress is None else progress,
    )
    last_save = 0.0

    def save(status: str) -> None:
        nonlocal last_save
        session.update(status=status, wall_seconds=time.monotonic() - start)
        if status != "running":
            session["finished"] = _now()
        if manifest.is_complete() and manifest.finished is None:
            manifest.finished = _now()
        manifest.update_throughput()
        manifest.save(out)
        last_save = time.monotonic()

    try:
        save("running")
        if workers == 1 and scheduler is None:
            records = _in_process(tasks)
        else:
            records = _on_dask(tasks, workers, scheduler)
        with closing(records):
            for record in records:
                _check_visible(out, record, manifest.arms, manifest.prefix(record.chunk))
                manifest.mark_complete(record)
                session["chunks_run"] += 1
                session["patients_run"] += record.patients
                session["unit_steps"] += record.unit_steps
                if time.monotonic() - last_save >= MANIFEST_INTERVAL:
                    save("running")
                bar.update(record.patients)
        save("complete")
        storage.remove_tmp(out)
        if after is not None:
            after()
    except KeyboardInterrupt as e:
        signum = signal.SIGTERM if isinstance(e, _Terminated) else signal.SIGINT
        _save_quietly(save, "interrupted" if signum == signal.SIGINT else "terminated")
        raise RunInterrupted(
            f"{'interrupted' if signum == signal.SIGINT else 'terminated'} with "
            f"{len(manifest.completed_chunks())} of {len(manifest.chunks)} chunks complete in "
            f"{out}; run again with --resume to continue",
            signum,
        ) from None
    except BaseException:
        _save_quietly(save, "failed")
        raise
    finally:
        bar.close()

    totals = manifest.totals()
    return RunSummary(
        out=out,
        patients=manifest.patients,
        chunks=len(manifest.chunks),
        chunks_run=session["chunks_run"],
        patients_run=session["patients_run"],
        patient_years=totals["patient_years"],
        wall_seconds=time.monotonic() - start,
        unit_steps=session["unit_steps"],
        output_bytes=storage.dir_size(out, exclude=(lock.LOCK,)),
        damaged=damaged,
    )


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a batch system's time limit) ends the run as Ctrl-C
    does: tasks cancelled, cluster closed, manifest saved, folder released. Only in the main
    thread; elsewhere signals are left alone."""

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _save_quietly(save: Callable[[str], None], status: str) -> None:
    """Record the session's end; a failure here must not hide the original error."""
    try:
        save(status)
    except Exception:  # noqa: BLE001 - best effort, the original error matters more
        pass


def _os_message(e: OSError, out: Path) -> str:
    if e.filename is None:  # e.g. a lost connection to the dask scheduler
        return f"input/output error during the run into {out}: {type(e).__name__}: {e}"
    reason = e.strerror or str(e)
    return f"cannot write {e.filename}: {reason} (check free space and permissions of {out})"


def _check_visible(out: Path, record: ChunkRecord, arms: list[str], prefix: str = "") -> None:
    """Refuse to record a chunk whose files this process cannot see (unshared ``out``)."""
    missing = storage.missing_files(out, record.chunk, record.tables, arms, prefix)
    if missing:
        raise RunError(
            f"chunk {record.chunk} was written by worker {record.worker} but {missing[0]} is not "
            "visible here: --out must be a folder that the workers and this machine share"
        )
