"""Giving a finished chunk's memory back, so a worker's peak stays one chunk's whatever the
number of chunks it runs (collect, empty Arrow's pool, trim glibc's heap, freeze survivors out
of the collector on the runner's own processes)."""

from __future__ import annotations

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
