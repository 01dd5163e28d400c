"""Runner: chunk planning, folder rules, resume, identical tables whatever the workers or chunks.

Most tests use a small deterministic fake engine defined here (a patient's rows depend only on
(seed, patient id), as the real engine promises); a few use the real engine.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from progression import chunking, runner, storage
from progression.chunking import plan_chunks
from progression.manifest import Manifest
from progression.progress import ProgressBar
from progression.runner import RunError, RunInterrupted, run
from progression.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------ fake engine


@dataclass(frozen=True)
class FakeCohort:
    patients: int
    seed: int


@dataclass(frozen=True)
class FakeScenario:
    path: str
    text: str
    hash: str
    cohort: FakeCohort
    arm_names: tuple[str, ...]


def make_scenario(
    patients: int = 20, seed: int = 7, arms: tuple[str, ...] = ("placebo", "treated")
) -> FakeScenario:
    text = f"[cohort]\npatients = {patients}\nseed = {seed}\narms = {list(arms)}\n"
    digest = hashlib.sha256(text.encode()).hexdigest()
    return FakeScenario("fake.toml", text, digest, FakeCohort(patients, seed), arms)


@dataclass
class FakeResult:
    tables: dict[str, pa.Table]
    unit_steps: int
    patient_years: float


SCHEMAS = {
    "patients": pa.schema([("patient_id", pa.int64()), ("arm", pa.string()),
                           ("sex", pa.string()), ("followup_months", pa.float64())]),
    "visits": pa.schema([("patient_id", pa.int64()), ("arm", pa.string()),
                         ("month", pa.float64()), ("score", pa.float64()),
                         ("diagnosis", pa.string())]),
    "muscles": pa.schema([("patient_id", pa.int64()), ("arm", pa.string()),
                          ("month", pa.float64()), ("muscle", pa.string()),
                          ("side", pa.string()), ("cmap_mv", pa.float64())]),
    "events": pa.schema([("patient_id", pa.int64()), ("arm", pa.string()),
                         ("month", pa.float64()), ("event", pa.string()),
                         ("detail", pa.string())]),
}
UNITS = 100


def fake_simulate(scenario: FakeScenario, ids: np.ndarray) -> FakeResult:
    """Rows keyed by (seed, patient id) only; arms share random numbers (treated is slower)."""
    rows: dict[str, list[tuple]] = {name: [] for name in SCHEMAS}
    months_total = 0.0
    for pid in ids.tolist():
        rng = np.random.default_rng([scenario.cohort.seed, pid])
        followup = float(rng.integers(2, 8) * 3)
        slope, cmap0, dies = rng.uniform(0.5, 1.5), rng.uniform(4, 10), rng.random() < 0.3
        sex = "female" if rng.random() < 0.4 else "male"
        for a, arm in enumerate(scenario.arm_names):
            effect = 1.0 - 0.25 * a
            months_total += followup
            rows["patients"].append((pid, arm, sex, followup))
            for month in np.arange(0.0, followup + 1, 3.0).tolist():
                score = 48 - slope * effect * month
                rows["visits"].append((pid, arm, month, score, "ALS" if score < 40 else "none"))
                for muscle in ("biceps", "tibialis_anterior"):
                    for side in ("left", "right"):
                        cmap = cmap0 * np.exp(-0.02 * slope * effect * month)
                        rows["muscles"].append((pid, arm, month, muscle, side, cmap))
            if dies:
                rows["events"].append((pid, arm, followup - 0.5, "death", "respiratory"))
    tables = {
        name: pa.Table.from_pylist(
            [dict(zip(schema.names, r, strict=True)) for r in rows[name]], schema=schema
        )
        for name, schema in SCHEMAS.items()
    }
    return FakeResult(tables, int(months_total * UNITS), months_total / 12)


class CrashOnce:
    """Fake engine that fails the first time it meets patient ``patient`` (marker file)."""

    def __init__(self, patient: int, marker: Path, how: str = "raise") -> None:
        self.patient, self.marker, self.how = patient, marker, how

    def __call__(self, scenario: FakeScenario, ids: np.ndarray) -> FakeResult:
        if self.patient in ids and not self.marker.exists():
            self.marker.write_text("crashed")
            if self.how == "exit":  # a worker process dies
                os._exit(1)
            if self.how == "interrupt":
                raise KeyboardInterrupt
            raise RuntimeError("engine crashed")
        return fake_simulate(scenario, ids)


class Slow:
    """Fake engine that takes ``seconds`` per chunk."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, scenario: FakeScenario, ids: np.ndarray) -> FakeResult:
        time.sleep(self.seconds)
        return fake_simulate(scenario, ids)


# ---------------------------------------------------------------------------------------- helpers


def read_tables(out: Path) -> dict[str, pl.DataFrame]:
    """Every table of a run, chunk partition dropped, categories as strings, rows sorted."""
    tables = {}
    for name in storage.TABLES:
        if (out / name).exists():
            frame = pl.read_parquet(out / name, hive_partitioning=True).drop("chunk")
            frame = frame.with_columns(pl.col(pl.Categorical).cast(pl.String))
            tables[name] = frame.sort(frame.columns)
    return tables


def assert_same_tables(a: Path, b: Path) -> None:
    ta, tb = read_tables(a), read_tables(b)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        assert ta[name].equals(tb[name]), name


def run_fake(out: Path, scenario: FakeScenario | None = None, **kw) -> runner.RunSummary:
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    kw.setdefault("simulate", fake_simulate)
    return run(scenario or make_scenario(), out, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted in-process run of the default fake scenario, chunk size 5."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run_fake(out, chunk_size=5)
    return out


@pytest.fixture(scope="module")
def cluster():
    """A two-process LocalCluster reached through its scheduler address."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0",
                      silence_logs=40) as c:
        yield c


# ------------------------------------------------------------------------------------------ tests


def test_plan_chunks() -> None:
    assert plan_chunks(10, 4) == [range(0, 4), range(4, 8), range(8, 10)]
    assert plan_chunks(8, 4) == [range(0, 4), range(4, 8)]
    assert plan_chunks(0, 4) == []
    with pytest.raises(ValueError):
        plan_chunks(10, 0)


def test_default_chunk_size_balances_and_caps() -> None:
    assert chunking.default_chunk_size(make_scenario(patients=20), workers=2) == 3  # ceil(20/8)
    assert chunking.default_chunk_size(make_scenario(patients=1), workers=2) == 1
    big = chunking.default_chunk_size(make_scenario(patients=10**7), workers=2)
    assert 1 <= big <= chunking.MAX_CHUNK_SIZE


def test_default_chunk_size_from_engine_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunking, "_bytes_per_patient", lambda scenario: 10**8)  # 100 MB/patient
    size = chunking.default_chunk_size(make_scenario(patients=10**6), workers=2,
                                     memory_per_worker=4e9)
    assert size == int(chunking.MEMORY_FRACTION * 4e9 / 10**8)  # 20


def test_run_writes_dataset_manifest_and_scenario(reference: Path) -> None:
    scenario = make_scenario()
    assert (reference / storage.SCENARIO_COPY).read_text() == scenario.text
    m = Manifest.load(reference)
    assert m.scenario_hash == scenario.hash and m.is_complete()
    assert m.chunks == [[0, 5], [5, 10], [10, 15], [15, 20]] and m.chunk_size == 5
    assert m.started and m.finished and m.sessions[-1]["status"] == "complete"
    assert m.throughput["unit_steps"] > 0 and m.throughput["unit_steps_per_second"] > 0
    assert not (reference / storage.TMP_DIR).exists()
    # both readers agree on the partitions
    for name in ("patients", "visits", "muscles", "events"):
        table = ds.dataset(reference / name, format="parquet", partitioning="hive").to_table()
        frame = pl.read_parquet(reference / name, hive_partitioning=True)
        assert table.num_rows == frame.height
    patients = read_tables(reference)["patients"]
    assert patients.height == 20 * 2
    assert patients.select("arm", "patient_id").is_unique().all()
    chunks = pl.read_parquet(reference / "patients", hive_partitioning=True)
    assert (chunks["patient_id"] // 5 == chunks["chunk"]).all()


def test_summary(tmp_path: Path) -> None:
    summary = run_fake(tmp_path / "run", chunk_size=7)
    assert (summary.patients, summary.chunks, summary.chunks_run) == (20, 3, 3)
    assert summary.patients_run == 20 and summary.unit_steps > 0
    assert summary.patient_years and summary.patient_years > 0
    assert summary.output_bytes == storage.dir_size(tmp_path / "run")
    text = summary.format()
    assert "20 patients" in text and "unit-steps/s" in text and "patient-years" in text


def test_chunk_size_does_not_change_tables(tmp_path: Path, reference: Path) -> None:
    for size in (3, 7):
        run_fake(tmp_path / f"c{size}", chunk_size=size)
        assert_same_tables(reference, tmp_path / f"c{size}")


def test_refuses_non_empty_folder(tmp_path: Path, reference: Path) -> None:
    with pytest.raises(RunError, match="--resume.*--overwrite"):
        run_fake(reference)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("precious")
    for flag in ("resume", "overwrite"):
        with pytest.raises(RunError, match="not a progression run"):
            run_fake(other, **{flag: True})
    assert (other / "notes.txt").read_text() == "precious"
    with pytest.raises(RunError, match="not both"):
        run_fake(tmp_path / "x", resume=True, overwrite=True)


def test_overwrite_replaces_the_run(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "run"
    run_fake(out, scenario=make_scenario(patients=9, seed=3), chunk_size=2)
    run_fake(out, chunk_size=5, overwrite=True)
    assert_same_tables(reference, out)
    assert Manifest.load(out).chunk_size == 5 and len(Manifest.load(out).sessions) == 1


def test_resume_after_crash_equals_uninterrupted(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "run"
    crash = CrashOnce(patient=12, marker=tmp_path / "crashed")
    with pytest.raises(RuntimeError, match="engine crashed"):
        run_fake(out, chunk_size=5, simulate=crash)
    m = Manifest.load(out)
    assert m.completed_chunks() == {0, 1} and m.sessions[-1]["status"] == "failed"
    # leftovers of the crashed chunk, as a killed worker would leave them
    storage.write_chunk(out, 2, fake_simulate(make_scenario(), np.arange(10, 12)).tables,
                        metadata={}, arms=("placebo",))
    (out / storage.TMP_DIR / "chunk=00003.visits.arm=placebo.x.tmp").write_bytes(b"half")
    summary = run_fake(out, resume=True, simulate=crash)
    assert summary.chunks_run == 2 and summary.patients_run == 10
    assert_same_tables(reference, out)
    assert [s["status"] for s in Manifest.load(out).sessions] == ["failed", "complete"]
    # resuming a complete run does nothing
    assert run_fake(out, resume=True).chunks_run == 0
    assert_same_tables(reference, out)


def test_resume_trusts_only_the_manifest(tmp_path: Path, reference: Path) -> None:
    """Chunk files written but not yet recorded (client died) are redone, not duplicated."""
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    m = Manifest.load(out)
    m.completed = [c for c in m.completed if c["chunk"] != 1]
    m.finished = None
    m.save(out)
    assert run_fake(out, resume=True).chunks_run == 1
    assert_same_tables(reference, out)


def test_resume_refuses_other_scenario_or_chunk_size(tmp_path: Path, reference: Path) -> None:
    with pytest.raises(RunError, match="scenario .* differs"):
        run_fake(reference, scenario=make_scenario(seed=8), resume=True)
    with pytest.raises(RunError, match="chunk size 3"):
        run_fake(reference, chunk_size=3, resume=True)
    out = tmp_path / "fresh"  # resume into nothing starts a run
    run_fake(out, resume=True, chunk_size=5)
    assert_same_tables(reference, out)


def test_keyboard_interrupt_in_process_leaves_resumable_folder(
    tmp_path: Path, reference: Path
) -> None:
    out = tmp_path / "run"
    stop = CrashOnce(patient=7, marker=tmp_path / "stopped", how="interrupt")
    with pytest.raises(RunInterrupted, match="--resume"):
        run_fake(out, chunk_size=5, simulate=stop)
    assert Manifest.load(out).sessions[-1]["status"] == "interrupted"
    run_fake(out, resume=True, simulate=stop)
    assert_same_tables(reference, out)


def test_os_errors_become_run_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunError, match="is not a folder"):
        run_fake(blocker)
    with pytest.raises(RunError, match=f"cannot write {blocker}/run"):
        run_fake(blocker / "run")  # parent is a file: ENOTDIR
    out = tmp_path / "ro"
    out.mkdir()

    def no_space(*args: object, **kw: object) -> int:
        raise OSError(28, "No space left on device", str(out / "visits"))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(storage, "write_chunk", no_space)
        with pytest.raises(RunError, match="No space left on device"):
            run_fake(out, chunk_size=5)
    assert Manifest.load(out).sessions[-1]["status"] == "failed"


def test_io_error_without_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def lost(*args: object, **kw: object) -> int:
        raise ConnectionResetError("scheduler went away")

    monkeypatch.setattr(storage, "write_chunk", lost)
    with pytest.raises(RunError, match="input/output error.*scheduler went away"):
        run_fake(tmp_path / "run")


def test_chunk_files_must_be_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker writing to its own disk (``out`` not shared) is caught, not recorded."""
    monkeypatch.setattr(storage, "write_chunk", lambda *a, **kw: [])
    with pytest.raises(RunError, match="not visible here.*share"):
        run_fake(tmp_path / "run")
    assert not Manifest.load(tmp_path / "run").completed


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="workers"):
        run_fake(tmp_path / "a", workers=0)
    with pytest.raises(RunError, match="chunk-size"):
        run_fake(tmp_path / "a", chunk_size=0)
    with pytest.raises(RunError, match="arm name"):
        run_fake(tmp_path / "a", scenario=make_scenario(arms=("a b",)))


def test_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_fake(tmp_path / "quiet", chunk_size=5)
    assert capsys.readouterr().err == ""
    run_fake(tmp_path / "loud", chunk_size=5, progress=True)
    err = capsys.readouterr().err
    assert "\r" in err and "20/20 patients" in err and "ETA" in err and err.endswith("\n")


# ---------------------------------------------------------------------------------------- dask


def test_local_cluster_matches_in_process(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "run"
    summary = run_fake(out, workers=2, chunk_size=3)
    assert summary.chunks_run == 7
    assert_same_tables(reference, out)
    workers = {c["worker"] for c in Manifest.load(out).completed}
    assert len(workers) >= 1 and all(":" in w for w in workers)


def test_scheduler_address_and_lost_worker(tmp_path: Path, reference: Path, cluster) -> None:
    out = tmp_path / "run"
    dies = CrashOnce(patient=9, marker=tmp_path / "died", how="exit")
    run_fake(out, scheduler=cluster.scheduler_address, chunk_size=5, simulate=dies)
    assert (tmp_path / "died").exists()  # a worker process did die mid-run
    assert Manifest.load(out).is_complete()
    assert_same_tables(reference, out)


def test_default_chunk_size_on_a_cluster(tmp_path: Path, cluster) -> None:
    from distributed import Client

    with Client(cluster.scheduler_address) as client:  # a killed worker may be restarting
        client.wait_for_workers(2, timeout=30)
    run_fake(tmp_path / "run", scheduler=cluster.scheduler_address)
    m = Manifest.load(tmp_path / "run")
    assert m.chunk_size == 3  # ceil(20 / (4 chunks x 2 worker threads))
    assert m.is_complete()


def test_task_error_is_retried_on_dask(tmp_path: Path, reference: Path, cluster) -> None:
    out = tmp_path / "run"
    flaky = CrashOnce(patient=3, marker=tmp_path / "flaked")
    run_fake(out, scheduler=cluster.scheduler_address, chunk_size=5, simulate=flaky)
    assert (tmp_path / "flaked").exists()
    assert_same_tables(reference, out)


def test_interrupt_closes_local_cluster(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    def interrupt(self: ProgressBar, patients: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ProgressBar, "update", interrupt)
    def workers() -> set[int]:  # spawned worker processes (not multiprocessing's tracker)
        return {p.pid for p in psutil.Process().children(recursive=True)
                if "spawn_main" in " ".join(p.cmdline())}

    before = workers()
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        run_fake(out, workers=2, chunk_size=5, simulate=Slow(0.2))
    monkeypatch.undo()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = workers() - before
        if not left:
            break
        time.sleep(0.1)
    assert not left, "worker processes outlived the run"
    m = Manifest.load(out)
    assert m.sessions[-1]["status"] == "interrupted" and len(m.completed_chunks()) == 1
    run_fake(out, resume=True)
    assert_same_tables(reference, out)


def live_group_members(pgid: int, wait: float = 10.0) -> list[int]:
    """Processes still running (zombies waiting for init to reap them do not count)."""
    import psutil

    deadline = time.monotonic() + wait
    while True:
        live = []
        for p in psutil.process_iter(["status"]):
            try:
                if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                    live.append(p.pid)
            except (ProcessLookupError, psutil.Error):
                continue
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.1)


def wait_for_a_chunk(out: Path, proc: subprocess.Popen, timeout: float) -> None:
    """Wait until the run in ``out`` (by process ``proc``) has recorded a chunk, or ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if Manifest.load(out).completed:
                return
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)


def test_ctrl_c_on_a_terminal(tmp_path: Path, reference: Path) -> None:
    """SIGINT to the whole process group, as a terminal sends it: clean stop, then resume."""
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(Path(__file__).parent)!r}]
        from test_runner import Slow, make_scenario
        from progression.runner import RunInterrupted, run
        try:
            run(make_scenario(), {str(out)!r}, workers=2, chunk_size=2, simulate=Slow(1.5),
                progress=False)
        except RunInterrupted as e:
            print(e)
            sys.exit(130)
    """)
    # As from a terminal: SIGINT at its default disposition in the child, whatever this test
    # process inherited (an ignored SIGINT would be inherited, and Python then never raises
    # KeyboardInterrupt).
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # A chunk recorded in the manifest: the cluster is up and the client is collecting
        # results, where Ctrl-C must be handled (not while workers start).
        wait_for_a_chunk(out, proc, timeout=60)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "--resume" in stdout
    assert "Traceback" not in stderr, stderr
    assert not live_group_members(proc.pid), "worker processes outlived the run"
    run_fake(out, resume=True)
    assert_same_tables(reference, out)


# ---------------------------------------------------------------------------------- real engine


ALS = ROOT / "scenarios" / "als_natural_history.toml"


def test_real_engine_same_tables_for_any_chunk_size(tmp_path: Path) -> None:
    scenario = load_scenario(ALS, patients=6, seed=11)
    a = run(scenario, tmp_path / "a", workers=1, chunk_size=2, progress=False)
    run(scenario, tmp_path / "b", workers=1, chunk_size=4, progress=False)
    assert a.patients == 6 and a.unit_steps > 0
    assert_same_tables(tmp_path / "a", tmp_path / "b")
    for name in ("patients", "visits", "muscles", "events"):
        ds.dataset(tmp_path / "a" / name, format="parquet", partitioning="hive").to_table()


def test_real_engine_on_local_cluster(tmp_path: Path) -> None:
    scenario = load_scenario(ALS, patients=6, seed=11)
    run(scenario, tmp_path / "a", workers=1, chunk_size=3, progress=False)
    run(scenario, tmp_path / "b", workers=2, chunk_size=2, progress=False)
    assert_same_tables(tmp_path / "a", tmp_path / "b")
