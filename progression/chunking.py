"""How a cohort is cut into chunks of patients: the plan, and a chunk size that balances the
workers and fits their memory. Chunk k covers patient ids ``[k*size, (k+1)*size)``; a patient's
output depends only on (scenario, patient id), so the size never changes the tables."""

from __future__ import annotations

import math
from typing import Any

SAFE_CHUNK_SIZE = 500
"""Patients per chunk when the engine cannot estimate its memory per patient."""


CHUNKS_PER_WORKER = 4
"""Aim for at least this many chunks per worker: load balance, progress and cheap retries."""


MEMORY_FRACTION = 0.5
"""Share of the available memory that all workers' chunks together may use."""


MAX_CHUNK_SIZE = 20_000
"""Upper bound on patients per chunk (bounds the work lost when a worker dies)."""


MAX_CHUNKS = 100_000
"""Most chunks one run may plan (the manifest lists each; 10^9 patients fit at the default
sizes)."""


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
