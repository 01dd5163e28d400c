"""Real processes on loopback: a `dask scheduler`, `dask worker`s and the `progression` command.

Unlike ``test_runner.py`` (in-process clusters, fake engine), everything here is a separate OS
process started the way a user would start it, running the real engine through the real CLI:

1. a scheduler and two workers reached with ``--scheduler`` give the same tables as an in-process
   run (``--workers 1``);
2. a run killed with SIGKILL, then continued with ``--resume``, equals an uninterrupted run, and a
   plain run into the killed run's folder is refused;
3. a worker killed (SIGKILL to its nanny and worker) mid-run: the run still completes, every
   chunk once, identical to the uninterrupted run, and no chunk recorded complete is rewritten.

"Identical" is as in CONVENTIONS.md: every table sorted by its key columns, value for value,
without the ``chunk`` partition. The ``dask`` executable is the one beside ``sys.executable``
(the venv running the tests), and every process imports ``progression`` from this checkout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from progression import storage
from progression.manifest import Manifest

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "als_natural_history.toml"
PATIENTS = 64
"""Small enough for seconds per run on two cores, big enough for a window to kill the run in."""
TABLE_KEYS = ("patient_id", "arm", "month", "muscle", "side", "event", "region", "detail")
START_TIMEOUT = 90.0
"""Seconds for the scheduler and workers to come up."""
RUN_TIMEOUT = 180.0
"""Seconds for one `progression run`."""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and sessions")


def _dask_executable() -> Path:
    """``dask`` of the environment running the tests (a venv's bin/, wherever the venv lives)."""
    path = Path(sys.executable).parent / "dask"
    if not path.exists():
        pytest.skip(f"no dask executable beside {sys.executable}")
    return path


def _env() -> dict[str, str]:
    """Environment for child processes: this checkout's ``progression`` first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """A child process in its own session (process group = its pid), logging to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        return f"----- {self.name} (pid {self.pid}, exit {self.popen.poll()}) -----\n{text}"

    def kill_group(self, timeout: float = 15.0) -> None:
        """SIGKILL the whole process group (a ``dask worker`` is a nanny and its child)."""
        with _suppress_lookup():
            os.killpg(self.pid, signal.SIGKILL)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        _wait_group_gone(self.pid, timeout)


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError)


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    import psutil

    live = []
    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                live.append(p.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return live


def _wait_group_gone(pgid: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (live := _group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return live


def start(name: str, cmd: list[str | Path], logs: Path) -> Proc:
    """Start ``cmd`` in a new session, stdout and stderr to ``logs/<name>.log``."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with open(log, "wb") as f:
        popen = subprocess.Popen(
            [str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
            cwd=ROOT, env=_env(), start_new_session=True,
        )
    return Proc(name, popen, log)


def progression_cmd(*args: str | Path) -> list[str | Path]:
    return [sys.executable, "-m", "progression", "run", *args]


def progression(*args: str | Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m progression run ARGS`` to the end; check its exit code."""
    cmd = [str(c) for c in progression_cmd(*args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=ROOT,
                              env=_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} took over {RUN_TIMEOUT} s\nstderr:\n{e.stderr}")
    assert proc.returncode == expect, (
        f"{' '.join(cmd)} exited {proc.returncode}, expected {expect}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc


def wait_for(what: str, condition: Callable[[], bool], timeout: float,
             procs: list[Proc] = ()) -> None:
    """Poll ``condition`` every 20 ms; fail with the processes' output after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}\n"
                        + "\n".join(p.output() for p in procs))
        time.sleep(0.02)


@dataclass
class Cluster:
    address: str
    scheduler: Proc
    workers: list[Proc]

    @property
    def procs(self) -> list[Proc]:
        return [self.scheduler, *self.workers]

    def output(self) -> str:
        return "\n".join(p.output() for p in self.procs)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """``dask scheduler`` and two ``dask worker`` processes (1 thread each) on 127.0.0.1."""
    from distributed import Client

    dask = _dask_executable()
    address = f"tcp://127.0.0.1:{_free_port()}"
    logs = tmp_path / "logs"
    procs: list[Proc] = []
    try:
        procs.append(start("scheduler", [dask, "scheduler", "--host", "127.0.0.1", "--port",
                                         address.rsplit(":", 1)[1], "--no-dashboard"], logs))
        for i in range(2):
            procs.append(start(f"worker{i}", [
                dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                "--nworkers", "1", "--no-dashboard", "--local-directory", tmp_path / f"dask{i}",
            ], logs))
        try:
            with Client(address, timeout=f"{START_TIMEOUT}s") as client:
                client.wait_for_workers(2, timeout=START_TIMEOUT)
        except Exception as e:  # noqa: BLE001 - any start-up failure: show the logs
            pytest.fail(f"cluster did not start: {e!r}\n" + "\n".join(p.output() for p in procs))
        cluster = Cluster(address, procs[0], procs[1:])
        yield cluster
    finally:
        for p in reversed(procs):
            p.kill_group()
        left = {p.name: _group_members(p.pid) for p in procs}
        assert not any(left.values()), f"processes outlived the test: {left}"


# ------------------------------------------------------------------------------------ scenario


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped ALS scenario (a copy: the CLI reads the file, the runs share it)."""
    path = tmp_path_factory.mktemp("scenario") / "als.toml"
    path.write_text(SCENARIO.read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(scenario: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run B: uninterrupted, in process (``--workers 1``), chunks of 4."""
    out = tmp_path_factory.mktemp("reference") / "B"
    progression(scenario, "--out", out, "--patients", str(PATIENTS), "--workers", "1",
                "--chunk-size", "4")
    check_complete(out)
    return out


# ------------------------------------------------------------------------------------- checks


def read_tables(out: Path) -> dict[str, pl.DataFrame]:
    """Each table of a run, ``chunk`` dropped, categories as strings, sorted by its keys."""
    tables = {}
    for name in storage.TABLES:
        if not (out / name).is_dir():
            continue
        frame = pl.read_parquet(out / name / "**" / "*.parquet", hive_partitioning=True)
        frame = frame.drop("chunk").with_columns(pl.col(pl.Categorical).cast(pl.String))
        keys = [c for c in TABLE_KEYS if c in frame.columns]
        tables[name] = frame.sort([*keys, *(c for c in frame.columns if c not in keys)])
    return tables


def assert_same_tables(a: Path, b: Path) -> None:
    ta, tb = read_tables(a), read_tables(b)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        assert ta[name].columns == tb[name].columns, name
        assert ta[name].height == tb[name].height, (name, ta[name].height, tb[name].height)
        assert ta[name].equals(tb[name]), f"table {name} differs between {a} and {b}"


def check_complete(out: Path) -> Manifest:
    """Every chunk recorded and on disk once, every patient once per arm, no temporary files."""
    m = Manifest.load(out)
    assert m.is_complete(), f"chunks missing from the manifest: " \
        f"{sorted(set(range(len(m.chunks))) - m.completed_chunks())}"
    assert [c["chunk"] for c in m.completed] == list(range(len(m.chunks)))
    assert m.finished is not None and m.sessions[-1]["status"] == "complete"
    for k in range(len(m.chunks)):
        assert not storage.missing_files(out, k, m.completed[k]["tables"], m.arms), k
    on_disk = storage.chunk_dirs(out)
    assert sorted(on_disk) == list(range(len(m.chunks)))
    patients = pl.read_parquet(out / "patients" / "**" / "*.parquet", hive_partitioning=True)
    assert patients.height == m.patients * len(m.arms)
    assert patients.select("patient_id", "arm").is_unique().all(), "a patient written twice"
    assert sorted(set(patients["patient_id"].to_list())) == list(range(m.patients))
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name == storage.TMP_DIR]
    assert not leftovers, leftovers
    return m


def completed_now(out: Path) -> set[int]:
    """Chunks the manifest lists as complete at this moment (empty while unreadable)."""
    try:
        return Manifest.load(out).completed_chunks()
    except (FileNotFoundError, ValueError):
        return set()


def chunk_files(out: Path, chunks: set[int]) -> dict[Path, tuple[int, int]]:
    """(inode, mtime in ns) of every file of ``chunks``: a rewritten file changes both."""
    found = {}
    for k, dirs in storage.chunk_dirs(out).items():
        if k in chunks:
            for d in dirs:
                for f in d.iterdir():
                    st = f.stat()
                    found[f] = (st.st_ino, st.st_mtime_ns)
    return found


def worker_pid(record: dict) -> int:
    """Process id of the dask worker that wrote a chunk (manifest ``worker`` is host:pid)."""
    return int(str(record["worker"]).rsplit(":", 1)[1])


# ------------------------------------------------------------------------------------------ tests


def test_scheduler_and_two_workers_match_in_process(
    cluster: Cluster, scenario: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "A"
    progression(scenario, "--out", out, "--patients", str(PATIENTS), "--chunk-size", "4",
                "--scheduler", cluster.address)
    m = check_complete(out)
    assert m.sessions[-1]["scheduler"] == cluster.address
    # the chunks ran in the two worker processes, not in the client
    groups = {os.getpgid(worker_pid(c)) for c in m.completed}
    assert groups == {w.pid for w in cluster.workers}, cluster.output()
    assert_same_tables(out, reference)


def test_sigkill_then_resume(scenario: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "C"
    args = (scenario, "--out", out, "--patients", str(PATIENTS), "--workers", "1")
    proc = start("killed-run", progression_cmd(*args, "--chunk-size", "2"), tmp_path / "logs")
    try:
        n_chunks = -(-PATIENTS // 2)

        def some_not_all() -> bool:
            if proc.popen.poll() is not None:
                pytest.fail("the run ended before it could be killed (make the scenario "
                            f"bigger)\n{proc.output()}")
            return 0 < len(completed_now(out)) < n_chunks

        wait_for("a chunk to complete", some_not_all, RUN_TIMEOUT, [proc])
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.popen.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill_group()

    killed = Manifest.load(out)
    assert not killed.is_complete() and killed.sessions[-1]["status"] == "running"
    kept = chunk_files(out, killed.completed_chunks())

    refused = progression(*args, expect=2)
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith("progression: error:") and str(out) in lines[0]
    assert "--resume" in lines[0] and "--overwrite" in lines[0]

    progression(*args, "--resume")
    m = check_complete(out)
    assert m.chunk_size == 2 and len(m.chunks) == n_chunks
    assert [s["status"] for s in m.sessions] == ["running", "complete"]
    assert m.sessions[-1]["chunks_run"] == n_chunks - len(killed.completed_chunks())
    assert chunk_files(out, killed.completed_chunks()) == kept, "a complete chunk was redone"
    assert_same_tables(out, reference)


def test_worker_killed_mid_run(
    cluster: Cluster, scenario: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "D"
    cmd = progression_cmd(scenario, "--out", out, "--patients", str(PATIENTS), "--chunk-size",
                          "2", "--scheduler", cluster.address)
    run = start("run", cmd, tmp_path / "logs")
    n_chunks = -(-PATIENTS // 2)
    try:
        def some_not_all() -> bool:
            if run.popen.poll() is not None:
                pytest.fail("the run ended before a worker could be killed (make the scenario "
                            f"bigger)\n{run.output()}\n{cluster.output()}")
            return 0 < len(completed_now(out)) < n_chunks

        wait_for("a chunk to complete", some_not_all, RUN_TIMEOUT, [run, *cluster.procs])
        # kill the worker that wrote the first recorded chunk: it also holds finished results
        before = Manifest.load(out)
        victim_pid = worker_pid(before.completed[0])
        victim = next(w for w in cluster.workers if w.pid == os.getpgid(victim_pid))
        survivor = next(w for w in cluster.workers if w is not victim)
        survivor_pids = set(_group_members(survivor.pid))
        kept = chunk_files(out, before.completed_chunks())
        victim.kill_group()
        assert not before.is_complete()
        try:
            code = run.popen.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run did not finish after a worker died\n{run.output()}\n"
                        f"{cluster.output()}")
        assert code == 0, f"{run.output()}\n{cluster.output()}"
    finally:
        run.kill_group()

    m = check_complete(out)
    assert victim.popen.poll() is not None and survivor.popen.poll() is None
    # chunks recorded after the kill: the victim's last ones (finished, not yet in the manifest)
    # and all the rest by the survivor
    late = {worker_pid(c) for c in m.completed if c["chunk"] not in before.completed_chunks()}
    assert late & survivor_pids and late <= survivor_pids | {victim_pid}, (late, survivor_pids)
    assert chunk_files(out, before.completed_chunks()) == kept, (
        "a chunk recorded complete before the worker died was written again"
    )
    assert_same_tables(out, reference)


# ------------------------------------------------------------------ batch systems (no SLURM here)


def test_jobqueue_profile_without_dask_jobqueue(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # any import of it now fails
    from progression import cluster as jobqueue

    importlib.reload(jobqueue)  # the module itself imports without dask-jobqueue
    profile = jobqueue.Profile("pbs", jobs=2, cores=4, memory="8GB", account="ABC")
    assert profile.cluster_kwargs() == {
        "cores": 4, "processes": 4, "memory": "8GB", "walltime": "04:00:00", "account": "ABC",
        "job_script_prologue": [], "job_extra_directives": [],
    }
    with pytest.raises(ValueError, match="slurm, pbs"):
        jobqueue.Profile("sge")
    for start in (jobqueue.start_cluster, jobqueue.scheduler_address):
        with pytest.raises(ImportError, match=r"pip install 'progression\[cluster\]'"):
            start(profile)
    assert jobqueue.main(["slurm", "--jobs", "2", "--account", "ABC"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dask-jobqueue is not installed" in err[0], err
