"""Run a scenario's cohort in chunks of patients, in process or on dask, into a Parquet dataset.

``run`` plans the cohort into chunks (chunk k covers patient ids ``[k*size, (k+1)*size)``),
submits one task per chunk that simulates the chunk AND writes its files (so only a small
:class:`~progression.manifest.ChunkRecord` travels back), records each finished chunk in the
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

The pieces it puts together: :mod:`progression.chunking` (plan and chunk size),
:mod:`progression.runfolder` (flags, new or resumed manifest), :mod:`progression.cluster` (the
dask cluster), :mod:`progression.memory` (a worker's memory between chunks),
:mod:`progression.signals` (Ctrl-C and SIGTERM) and :mod:`progression.progress` (the bar).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from progression import lock, storage
from progression.chunking import default_chunk_size, usable_cores
from progression.cluster import cluster_resources, connect, local_cluster
from progression.manifest import ChunkRecord
from progression.memory import release_memory
from progression.progress import ProgressBar, format_bytes, format_duration
from progression.runfolder import RunError, check_folder, package_version, prepare, utc_now
from progression.signals import Terminated, sigterm_as_interrupt

MANIFEST_INTERVAL = 1.0
"""Seconds between manifest rewrites while chunks complete (always written at the end)."""
RETRIES = 2
"""Extra attempts for a chunk whose task raised (dask ``retries``). A chunk whose worker process
died is rescheduled by dask itself (``distributed.scheduler.allowed-failures``, default 3)."""

Simulate = Callable[[Any, np.ndarray], Any]


class RunInterrupted(RunError):
    """The run was stopped (Ctrl-C or SIGTERM); the folder is left resumable.

    Attributes:
        signum: the signal that stopped it (``signal.SIGINT`` or ``signal.SIGTERM``).
    """

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum


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
            + f"\npatient-years {years} | wall {format_duration(self.wall_seconds)}"
            f" | {self.unit_steps_per_second:.3g} unit-steps/s"
            f" | output {format_bytes(self.output_bytes)}"
            + "".join(f"\nredone chunk {k}: {why}" for k, why in sorted(self.damaged.items()))
        )

    __str__ = format


# ------------------------------------------------------------------------------------- planning


# ------------------------------------------------------------------------------- the chunk task


def _default_simulate() -> Simulate:
    from progression.model import simulate_chunk

    return simulate_chunk


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
    meta = storage.file_metadata(scenario.hash, package_version())
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


# ----------------------------------------------------------------------------------- execution


def _in_process(tasks: list[tuple[Any, ...]]) -> Iterator[ChunkRecord]:
    for args in tasks:
        yield run_chunk(*args)


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
            client = stack.enter_context(connect(scheduler))
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
        check_folder(out, resume, overwrite)
        created = not out.exists()
        try:
            token = lock.acquire(out)
        except lock.FolderInUse as e:
            raise RunError(str(e)) from None
    except OSError as e:
        raise RunError(_os_message(e, out)) from e
    try:
        with sigterm_as_interrupt():
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
    manifest, damaged = prepare(
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
        "started": utc_now(), "finished": None, "status": "running", "workers": workers,
        "scheduler": scheduler, "chunks_run": 0, "patients_run": 0, "unit_steps": 0,
        "wall_seconds": 0.0, "damaged": {str(k): why for k, why in damaged.items()},
    }
    manifest.sessions.append(session)
    bar = ProgressBar(
        manifest.patients, manifest.totals()["patients"], sys.stderr,
        sys.stderr.isatty() if progress is None else progress,
    )
    last_save = 0.0

    def save(status: str) -> None:
        nonlocal last_save
        session.update(status=status, wall_seconds=time.monotonic() - start)
        if status != "running":
            session["finished"] = utc_now()
        if manifest.is_complete() and manifest.finished is None:
            manifest.finished = utc_now()
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
        signum = signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT
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
