"""The dask clusters a run uses: a local cluster of worker processes (:func:`local_cluster`),
an existing one reached by its scheduler's address (:func:`connect`, :func:`cluster_resources`),
or one on a SLURM or PBS batch system (:func:`start_cluster`), for ``progression run
--scheduler``.

SLURM and PBS need the optional extra ``pip install 'progression[cluster]'`` (dask-jobqueue >=
0.8), imported only when such a cluster is started, so ``progression`` never depends on it.

The scheduler runs in the process that calls :func:`start_cluster` (on the login node); each batch
job is one node's worth of dask workers, one single-threaded worker process per core as the local
cluster has. The workers must reach the run folder and this Python environment at the same paths
(a shared filesystem), since each writes its own chunks' files.

From the command line (the cluster lives until Ctrl-C)::

    python -m progression.cluster slurm --jobs 4 --cores 32 --memory 64GB --account ABC
    # prints: tcp://10.1.2.3:8786 ; then, from another shell on the login node:
    progression run scenarios/als_natural_history.toml --out /shared/runs/als \\
        --scheduler tcp://10.1.2.3:8786 --chunk-size 500

From Python::

    from progression.cluster import Profile, start_cluster
    from progression.runner import run
    from progression.scenario import load_scenario

    with start_cluster(Profile("slurm", jobs=4, account="ABC")) as cluster:
        run(load_scenario("scenarios/als_natural_history.toml"), "/shared/runs/als",
            scheduler=cluster.scheduler_address, chunk_size=500)

Jobs that reach their walltime take their workers with them: the chunks they were running are
retried on the others, and a run cut short altogether continues with ``--resume``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

from progression.chunking import usable_cores
from progression.runfolder import RunError
from progression.signals import sigint_ignored


def connect(scheduler: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``scheduler``, or a RunError."""
    from distributed import Client

    try:
        return Client(scheduler, timeout="30s")
    except (OSError, ValueError) as e:  # TimeoutError is an OSError
        raise RunError(f"cannot reach the dask scheduler at {scheduler}: {e}") from e


def cluster_resources(scheduler: str) -> tuple[int | None, float | None]:
    """(worker threads, smallest memory limit per thread in bytes) of a running dask cluster."""
    with connect(scheduler) as client:
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
        with sigint_ignored(), dask.config.set(LOCAL_CLUSTER_CONFIG):
            return LocalCluster(
                n_workers=workers or usable_cores(),
                threads_per_worker=1,
                processes=True,
                dashboard_address="127.0.0.1:0",  # no clash with a dashboard on :8787
                # CRITICAL, not ERROR: on Ctrl-C the in-process scheduler can close before a
                # worker's next heartbeat, which distributed logs as an ERROR traceback. A
                # failing chunk or a dying worker reaches the user through the runner's
                # exceptions, not through these logs.
                silence_logs=logging.CRITICAL,
            )
    except RuntimeError as e:
        raise RunError(
            f"could not start local dask workers ({e}); a script that calls run() must "
            "do so under `if __name__ == '__main__':`"
        ) from e


# ------------------------------------------------------------------------------- batch systems


SYSTEMS = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}
"""Batch systems and their dask-jobqueue cluster classes."""

INSTALL_HINT = (
    "dask-jobqueue is not installed; SLURM and PBS clusters need the optional extra: "
    "pip install 'progression[cluster]'"
)


@dataclass(frozen=True)
class Profile:
    """Where and how big the batch jobs are (everything dask-jobqueue needs, and no more).

    Attributes:
        system: ``"slurm"`` or ``"pbs"``.
        jobs: batch jobs to submit; each is ``cores`` single-threaded dask workers.
        cores: cores per job (one worker process each).
        memory: memory per job, shared evenly by its workers (e.g. ``"64GB"``); the runner's
            default chunk size aims at half of a worker's share.
        walltime: time limit of each job (``"HH:MM:SS"``).
        queue: SLURM partition or PBS queue (None: the system's default).
        account: account or project charged (``#SBATCH -A`` / ``#PBS -A``).
        interface: network interface of workers and scheduler, e.g. ``"ib0"`` (None: default).
        local_directory: node-local scratch for dask's own files, e.g. ``"$TMPDIR"``; never the
            run folder (None: dask's default temporary folder).
        log_directory: folder for the jobs' stdout and stderr (None: the submit folder).
        job_script_prologue: shell lines run before the workers start, e.g.
            ``("module load python/3.11", "source /shared/progression/.venv/bin/activate")``.
            By default the workers run this process's Python interpreter.
        job_extra_directives: extra batch directives, e.g. ``("--constraint=cpu",)`` for SLURM or
            ``("-l place=excl",)`` for PBS.
    """

    system: str = "slurm"
    jobs: int = 1
    cores: int = 8
    memory: str = "16GB"
    walltime: str = "04:00:00"
    queue: str | None = None
    account: str | None = None
    interface: str | None = None
    local_directory: str | None = None
    log_directory: str | None = None
    job_script_prologue: tuple[str, ...] = ()
    job_extra_directives: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.system not in SYSTEMS:
            raise ValueError(f"system must be one of {', '.join(SYSTEMS)}, got {self.system!r}")
        if self.jobs < 1 or self.cores < 1:
            raise ValueError(f"need jobs >= 1 and cores >= 1, got {self.jobs} and {self.cores}")

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the dask-jobqueue cluster class for this profile."""
        kwargs: dict[str, Any] = {
            "cores": self.cores,
            "processes": self.cores,  # one thread per worker, as the local cluster
            "memory": self.memory,
            "walltime": self.walltime,
            "job_script_prologue": list(self.job_script_prologue),
            "job_extra_directives": list(self.job_extra_directives),
        }
        optional = {
            "queue": self.queue, "account": self.account, "interface": self.interface,
            "local_directory": self.local_directory, "log_directory": self.log_directory,
        }
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        return kwargs


def cluster_class(system: str) -> Any:
    """The dask-jobqueue class for ``system``, imported now (ImportError with a hint if absent)."""
    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {', '.join(SYSTEMS)}, got {system!r}")
    try:
        import dask_jobqueue
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return getattr(dask_jobqueue, SYSTEMS[system])


def start_cluster(profile: Profile | None = None, **overrides: Any) -> Any:
    """Start the profile's batch cluster and submit its jobs; return the cluster.

    The scheduler runs in this process: keep the returned object (a context manager; closing it
    cancels the jobs) for as long as runs use ``cluster.scheduler_address``. Jobs may wait in the
    queue; the call does not wait for them.

    Args:
        profile: the jobs to submit (default ``Profile()``).
        **overrides: fields of the profile to change, e.g. ``jobs=8, account="ABC"``.

    Raises:
        ImportError: dask-jobqueue is missing (the message says how to install it).
    """
    profile = replace(profile or Profile(), **overrides)
    cls = cluster_class(profile.system)
    cluster = cls(**profile.cluster_kwargs())
    try:
        cluster.scale(jobs=profile.jobs)
    except BaseException:
        cluster.close()
        raise
    return cluster


def scheduler_address(profile: Profile | None = None, **overrides: Any) -> tuple[str, Any]:
    """``(address, cluster)`` of a started batch cluster: pass the address to ``--scheduler``.

    The cluster is returned too because the scheduler lives in it: drop it and the jobs end.
    """
    cluster = start_cluster(profile, **overrides)
    return str(cluster.scheduler_address), cluster


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m progression.cluster",
        description="Start a dask cluster on SLURM or PBS, print its scheduler address and keep "
        "it up until Ctrl-C (for progression run --scheduler ADDRESS).",
    )
    d = Profile()
    p.add_argument("system", choices=sorted(SYSTEMS), help="batch system")
    p.add_argument("--jobs", type=int, default=d.jobs, help=f"batch jobs (default {d.jobs})")
    p.add_argument("--cores", type=int, default=d.cores,
                   help=f"cores per job, one worker each (default {d.cores})")
    p.add_argument("--memory", default=d.memory, help=f"memory per job (default {d.memory})")
    p.add_argument("--walltime", default=d.walltime, help=f"per job (default {d.walltime})")
    p.add_argument("--queue", help="partition (SLURM) or queue (PBS)")
    p.add_argument("--account", help="account or project to charge")
    p.add_argument("--interface", help="network interface, e.g. ib0")
    p.add_argument("--local-directory", help="node-local scratch, e.g. $TMPDIR")
    p.add_argument("--log-directory", help="folder for the jobs' output")
    p.add_argument("--prologue", action="append", default=[], metavar="LINE",
                   help="shell line before the workers start (repeatable)")
    p.add_argument("--directive", action="append", default=[], metavar="TEXT",
                   help="extra batch directive (repeatable)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        profile = Profile(
            system=args.system, jobs=args.jobs, cores=args.cores, memory=args.memory,
            walltime=args.walltime, queue=args.queue, account=args.account,
            interface=args.interface, local_directory=args.local_directory,
            log_directory=args.log_directory, job_script_prologue=tuple(args.prologue),
            job_extra_directives=tuple(args.directive),
        )
        cluster = start_cluster(profile)
    except (ImportError, ValueError) as e:
        print(f"progression.cluster: error: {e}", file=sys.stderr)
        return 2
    with cluster:
        print(cluster.scheduler_address, flush=True)
        print(f"{profile.jobs} job(s) of {profile.cores} workers submitted; Ctrl-C ends them",
              file=sys.stderr)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
