"""Run folders that cannot be mixed, deleted or misread (issue 15).

One writer per folder (the lock), only this program's folders overwritten, damaged files found
and redone, partial runs never read as whole, no run inside a run, the scenario as run, the
scenario's text once per run, and clear messages instead of tracebacks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from analysis.io import RunReadError, open_run, run_status
from progression import lock, runner, storage
from progression.manifest import Manifest
from progression.runner import RunError, RunInterrupted
from progression.scenario import load_scenario
from progression.studies import cli
from tests.conftest import ROOT, SCENARIOS
from tests.test_runner import (
    CrashOnce,
    assert_same_tables,
    fake_simulate,
    make_scenario,
    read_tables,
    run_fake,
    wait_for_a_chunk,
)

ALS = SCENARIOS / "als_natural_history.toml"
TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted in-process run of the default fake scenario, chunk size 5 (4 chunks)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run_fake(out, chunk_size=5)
    return out


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``progression ARGS`` in a child process (as a user runs it)."""
    return subprocess.run(
        [sys.executable, "-m", "progression", *map(str, args)], cwd=ROOT,
        capture_output=True, text=True, timeout=300,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("progression: error: "), proc.stderr
    return lines[0]


# ------------------------------------------------------------------- 1. one writer per folder


def test_a_live_owner_refuses_a_second_run_resume_or_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    before = _files(out)
    token = lock.acquire(out)  # this process owns it now, as a live run would
    try:
        for flags in ({"overwrite": True}, {"resume": True}):
            with pytest.raises(RunError, match=f"in use by pid {os.getpid()} on host"):
                run_fake(out, chunk_size=5, **flags)
        assert {k: v for k, v in _files(out).items() if k != lock.LOCK} == before
    finally:
        lock.release(out, token)
    assert not (out / lock.LOCK).exists()
    run_fake(out, overwrite=True, chunk_size=5)  # free again


def test_a_finished_or_failed_run_leaves_no_lock(tmp_path: Path) -> None:
    run_fake(tmp_path / "a", chunk_size=5)
    assert not (tmp_path / "a" / lock.LOCK).exists()
    with pytest.raises(RuntimeError):
        run_fake(tmp_path / "b", chunk_size=5,
                 simulate=CrashOnce(patient=7, marker=tmp_path / "crashed"))
    assert not (tmp_path / "b" / lock.LOCK).exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that no longer runs
    out.mkdir()
    (out / lock.LOCK).write_text(json.dumps({
        "host": socket.gethostname(), "pid": child.pid, "process_started": time.time() - 5,
        "started": "2026-01-01T00:00:00+00:00", "command": "progression run", "token": "dead",
    }))
    run_fake(out, chunk_size=5)  # an empty folder but for the stale lock: a new run
    assert_same_tables(reference, out)
    assert not (out / lock.LOCK).exists()


def test_lock_of_another_host_is_not_broken(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    record = {"host": "node17.cluster", "pid": 4242, "process_started": 1.0,
              "started": "2026-12-01T10:00:00+00:00", "command": "progression run s.toml",
              "token": "theirs"}
    (out / lock.LOCK).write_text(json.dumps(record))
    with pytest.raises(RunError, match=r"pid 4242 on host node17.cluster .*delete .*lock"):
        run_fake(out, resume=True)
    assert json.loads((out / lock.LOCK).read_text()) == record


def test_workers_of_a_run_that_lost_its_folder_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    token = lock.acquire(out)
    lock.release(out, token)
    other = lock.acquire(out)  # another run owns the folder now
    scenario = make_scenario()
    with pytest.raises(RunError, match="no longer owned"):
        runner.run_chunk(scenario, str(out), 0, 0, 5, fake_simulate, "", token)
    assert not storage.chunk_dirs(out)
    runner.run_chunk(scenario, str(out), 0, 0, 5, fake_simulate, "", other)
    assert list(storage.chunk_dirs(out)) == [0]


def _held_cli_run(out: Path, patients: int, gate: Path) -> subprocess.Popen[str]:
    """``progression run`` of the ALS scenario in a child process (chunks of 2 patients) that
    records two chunks (the second after the manifest's save interval, so the manifest shows
    them), then waits before each further chunk until the file ``gate`` exists; returned once a
    chunk is recorded (the run is under way and holds)."""
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path[:0] = [{str(ROOT)!r}]
        from progression import model, runner
        from progression.studies import cli

        def slow(scenario, ids):
            if ids[0] == 2:
                time.sleep(runner.MANIFEST_INTERVAL + 0.2)
            deadline = time.monotonic() + 120
            while ids[0] > 2 and not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:
                time.sleep(0.05)
            return model.simulate_chunk(scenario, ids)

        runner._default_simulate = lambda: slow
        sys.exit(cli.main(["run", {str(ALS)!r}, "--out", {str(out)!r}, "--patients",
                           "{patients}", "--workers", "1", "--chunk-size", "2"]))
    """)
    # SIGINT at its default disposition in the child, as from a terminal.
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_a_chunk(out, proc, timeout=120)
    return proc


def test_two_processes_cannot_share_a_run(tmp_path: Path) -> None:
    """The reported case: a slow run, then a second ``--overwrite`` into the same folder."""
    out = tmp_path / "run"
    first = _held_cli_run(out, patients=40, gate=tmp_path / "go")
    try:
        assert first.poll() is None, first.communicate()
        second = _cli("run", ALS, "--out", out, "--patients", "20", "--seed", "7",
                      "--overwrite", "--workers", "1")
        message = _one_line_error(second)
        assert f"pid {first.pid}" in message and "in use" in message
        assert "in use" in _one_line_error(_cli("run", ALS, "--out", out, "--patients", "40",
                                                "--resume", "--workers", "1"))
        (tmp_path / "go").touch()
        _, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    m = Manifest.load(out)
    assert m.is_complete() and m.patients == 40
    hashes = {pq.read_schema(out / f["path"]).metadata[storage.META_HASH.encode()]
              for c in m.completed for f in c["files"]}
    assert hashes == {m.scenario_hash.encode()}
    assert open_run(out)["patients"].collect().height == 40


# ------------------------------------------------------------- 2. only our runs are replaced


@pytest.mark.parametrize("foreign", ["index.html", "notes/", "patients/readme.txt"])
def test_overwrite_refuses_a_run_holding_what_it_did_not_write(
    tmp_path: Path, foreign: str
) -> None:
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    path = out / foreign.rstrip("/")
    if foreign.endswith("/"):
        path.mkdir()
        (path / "keep.txt").write_text("mine")
    else:
        path.write_text("mine")
    before = _files(out)
    with pytest.raises(RunError, match=f"holds {foreign.rstrip('/')} .*did not write"):
        run_fake(out, overwrite=True, chunk_size=5)
    assert _files(out) == before


def test_overwrite_refuses_a_folder_with_another_programs_manifest(tmp_path: Path) -> None:
    web = tmp_path / "site"
    web.mkdir()
    (web / "manifest.json").write_text('{"name": "my app", "icons": []}')
    (web / "index.html").write_text("<html></html>")
    before = _files(web)
    for flags in ({"overwrite": True}, {"resume": True}):
        with pytest.raises(RunError, match="not a progression run"):
            run_fake(web, **flags)
    assert _files(web) == before
    (web / "manifest.json").write_text("[1, 2, 3]")  # JSON, but not a manifest
    with pytest.raises(RunError, match="not a progression run"):
        run_fake(web, overwrite=True)


def test_overwrite_replaces_only_the_run(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "run"
    run_fake(out, chunk_size=7, scenario=make_scenario(seed=3))
    run_fake(out, overwrite=True, chunk_size=5)
    assert_same_tables(reference, out)
    assert Manifest.load(out).chunk_size == 5


# ------------------------------------------------------------------- 3. damaged chunks redone


def _damage(out: Path) -> dict[int, str]:
    """Truncate, empty, delete and corrupt (same size) one file each of chunks 0-3."""
    m = Manifest.load(out)
    files = {c["chunk"]: out / c["files"][0]["path"] for c in m.completed}
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    files[1].write_bytes(b"")
    files[2].unlink()
    data = bytearray(files[3].read_bytes())
    data[len(data) // 2] ^= 0xFF
    files[3].write_bytes(bytes(data))
    return {k: str(p) for k, p in files.items()}


def test_resume_finds_and_redoes_damaged_chunks(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    _damage(out)
    with pytest.raises(RunReadError, match="damaged run"):  # sizes are checked on open
        open_run(out)
    summary = run_fake(out, resume=True)
    assert sorted(summary.damaged) == [0, 1, 2, 3]
    assert "missing" in summary.damaged[2] and "SHA-256" in summary.damaged[3]
    assert "0 bytes" in summary.damaged[1] and "redone chunk 2" in str(summary)
    assert summary.chunks_run == 4
    assert_same_tables(reference, out)
    assert open_run(out)["patients"].collect()["patient_id"].n_unique() == 20


def test_verify_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    assert cli.main(["verify", str(out)]) == 0
    assert "complete run, 20 of 20 patients (4 of 4 chunks)" in capsys.readouterr().out
    _damage(out)
    assert cli.main(["verify", str(out), "--quick"]) == 1  # sizes only: 3 of 4 found
    assert capsys.readouterr().out.count("damaged:") == 3
    assert cli.main(["verify", str(out)]) == 1
    text = capsys.readouterr().out
    assert text.count("damaged:") == 4 and "--resume" in text
    assert cli.main(["verify", str(tmp_path)]) == 2
    assert "not a progression run" in capsys.readouterr().err


def test_open_run_reads_only_listed_files(tmp_path: Path) -> None:
    """A chunk written but never recorded (its client died) is not read as data."""
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    extra = fake_simulate(make_scenario(), np.arange(100, 105)).tables
    storage.write_chunk(out, 9, extra, metadata={}, arms=("placebo", "treated"))
    assert open_run(out)["patients"].collect()["patient_id"].max() < 20


# ---------------------------------------------------------------- 4. partial results refused


def _make_incomplete(out: Path, drop: int = 1) -> None:
    """Forget the last ``drop`` chunks, as when the run's process was killed before them."""
    m = Manifest.load(out)
    for c in m.completed[-drop:]:
        m.forget(c["chunk"])
    m.save(out)


def test_open_run_refuses_an_incomplete_run_unless_asked(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    _make_incomplete(out, drop=3)
    with pytest.raises(RunReadError) as e:
        open_run(out)
    message = str(e.value)
    assert "incomplete run: 5 of 20 patients (1 of 4 chunks complete)" in message
    assert f"progression run {out / 'scenario.toml'} --out {out} --resume" in message
    part = open_run(out, allow_incomplete=True)
    assert part["patients"].collect()["patient_id"].n_unique() == 5
    status = run_status(out)
    assert not status.complete and status.complete_patients == 5


@pytest.fixture(scope="module")
def small_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-patient run of the trial scenario with CMAP scans of APB, made incomplete."""
    out = tmp_path_factory.mktemp("trial") / "run"
    scenario = load_scenario(SCENARIOS / "trial_als.toml", patients=60, overrides={
        "exam.scans.muscles": ["APB"], "exam.scans.every_nth_visit": 4})
    runner.run(scenario, out, workers=1, chunk_size=20, progress=False)
    _make_incomplete(out)
    return out


def test_report_power_and_export_refuse_an_incomplete_run(
    small_trial: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = {
        "report": ["report", str(small_trial), "--out", str(tmp_path / "report")],
        "power": ["power", str(small_trial), "--out", str(tmp_path / "power"), "--n-per-arm",
                  "5", "--replicates", "10"],
        "export-scans": ["export-scans", str(small_trial), "--out", str(tmp_path / "scans")],
    }
    for name, argv in commands.items():
        assert cli.main(argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert "40 of 60 patients (2 of 3 chunks complete)" in err, err
        assert "--resume" in err and "--allow-incomplete" in err, err
        assert not (tmp_path / argv[3]).exists(), name


def test_report_power_and_export_say_incomplete_on_every_output(
    small_trial: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = "incomplete run: 40 of 60 patients (2 of 3 chunks complete)"
    assert cli.main(["report", str(small_trial), "--out", str(tmp_path / "r"),
                     "--allow-incomplete"]) == 0
    assert said in (tmp_path / "r" / "report.html").read_text()
    assert cli.main(["power", str(small_trial), "--out", str(tmp_path / "p"), "--n-per-arm", "5",
                     "--replicates", "10", "--endpoints", "alsfrs_slope",
                     "--allow-incomplete"]) == 0
    assert said in (tmp_path / "p" / "power.html").read_text()
    import polars as pl

    for table in (pl.read_parquet(tmp_path / "p" / "power.parquet"),
                  pl.read_csv(tmp_path / "p" / "sample_size.csv")):
        assert set(table["warning"]) == {said}
    capsys.readouterr()
    assert cli.main(["export-scans", str(small_trial), "--out", str(tmp_path / "s"),
                     "--allow-incomplete"]) == 0
    assert said in capsys.readouterr().err
    assert said in (tmp_path / "s" / "INCOMPLETE.txt").read_text()
    exported = {p.name.split("_")[0] for p in (tmp_path / "s").glob("p*.csv")}
    assert exported and max(int(p[1:]) for p in exported) < 40


# ---------------------------------------------------------------------- 5. no run inside a run


def test_no_run_inside_a_run(tmp_path: Path, reference: Path) -> None:
    before = _files(reference)
    for inner in (reference / "sub", reference / "patients" / "x", reference / "a" / "b"):
        with pytest.raises(RunError, match=f"inside the run {reference}"):
            run_fake(inner)
        assert not inner.exists()
    assert _files(reference) == before
    # ... nor a run folder that would hold one
    with pytest.raises(RunError, match="not a progression run"):
        run_fake(reference.parent, overwrite=True)
    with pytest.raises(RunError, match="is not empty"):
        run_fake(reference.parent)
    assert _files(reference) == before


# -------------------------------------------------------------------- 6. the scenario as run


def test_the_scenario_as_run_reproduces_the_run(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert cli.main(["run", str(ALS), "--out", str(out), "--patients", "6", "--seed", "5",
                     "--workers", "1", "--chunk-size", "3"]) == 0
    kept = out / "scenario.toml"
    m = Manifest.load(out)
    assert load_scenario(kept).hash == m.scenario_hash
    assert (load_scenario(kept).cohort.patients, load_scenario(kept).cohort.seed) == (6, 5)
    capsys.readouterr()
    assert cli.main(["validate", str(kept)]) == 0
    assert m.scenario_hash[:12] in capsys.readouterr().out
    # resuming from the run's own scenario finds the run complete
    assert cli.main(["run", str(kept), "--out", str(out), "--resume", "--workers", "1"]) == 0
    assert Manifest.load(out).sessions[-1]["chunks_run"] == 0
    # and running it elsewhere gives the same tables
    assert cli.main(["run", str(kept), "--out", str(tmp_path / "again"), "--workers", "1"]) == 0
    assert_same_tables(out, tmp_path / "again")


# ------------------------------------------------------------- 7. scenario text once per run


def test_files_carry_the_hash_and_version_not_the_text(tmp_path: Path) -> None:
    padded = tmp_path / "padded.toml"
    padded.write_text(ALS.read_text() + "\n" + "# a long comment line\n" * 20_000)  # 440 kB
    out = tmp_path / "run"
    assert cli.main(["run", str(padded), "--out", str(out), "--patients", "3", "--workers", "1",
                     "--chunk-size", "1"]) == 0
    m = Manifest.load(out)
    for record in m.completed:
        for f in record["files"]:
            meta = pq.read_schema(out / f["path"]).metadata
            assert storage.META_HASH.encode() in meta and storage.META_VERSION.encode() in meta
            assert not any(b"long comment" in v for v in meta.values())
    assert storage.dir_size(out) < 2 * padded.stat().st_size
    assert (out / "scenario.toml").stat().st_size >= padded.stat().st_size


# ----------------------------------------------------------- 8. messages, not tracebacks


def test_too_many_chunks_is_one_line(tmp_path: Path) -> None:
    message = _one_line_error(_cli("run", ALS, "--out", tmp_path / "r", "--patients",
                                   "1000000000", "--chunk-size", "1", "--workers", "1"))
    assert "more than 100,000" in message and "--chunk-size" in message
    assert not (tmp_path / "r").exists()


def test_a_manifest_that_is_a_json_list(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    (out / "manifest.json").write_text("[1, 2]")
    with pytest.raises(RunError, match="not a progression run"):
        run_fake(out, resume=True)
    with pytest.raises(ValueError, match="expected a JSON object"):
        Manifest.load(out)
    with pytest.raises(RunReadError, match="not a progression manifest"):
        open_run(out)


def test_hive_default_partition_is_not_an_arm(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="__HIVE_DEFAULT_PARTITION__"):
        run_fake(tmp_path / "r", scenario=make_scenario(arms=("__HIVE_DEFAULT_PARTITION__",)))


@pytest.mark.parametrize(("sig", "code", "status"), [(signal.SIGTERM, 143, "terminated"),
                                                     (signal.SIGINT, 130, "interrupted")])
def test_sigterm_and_ctrl_c_leave_a_clean_resumable_run(
    tmp_path: Path, sig: int, code: int, status: str
) -> None:
    out = tmp_path / "run"
    proc = _held_cli_run(out, patients=20, gate=tmp_path / "go")
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    m = Manifest.load(out)
    assert m.sessions[-1]["status"] == status and not m.is_complete()
    assert not (out / lock.LOCK).exists()
    assert cli.main(["run", str(out / "scenario.toml"), "--out", str(out), "--resume",
                     "--workers", "1"]) == 0
    whole = tmp_path / "whole"
    assert cli.main(["run", str(ALS), "--out", str(whole), "--patients", "20", "--workers",
                     "1"]) == 0
    assert_same_tables(whole, out)


def test_interrupted_run_resumes_to_the_same_tables(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted) as e:
        run_fake(out, chunk_size=5,
                 simulate=CrashOnce(patient=12, marker=tmp_path / "m", how="interrupt"))
    assert e.value.signum == signal.SIGINT
    run_fake(out, resume=True)
    assert read_tables(out).keys() == read_tables(reference).keys()
    assert_same_tables(reference, out)


def test_a_run_of_progression_0_1_stays_readable(tmp_path: Path) -> None:
    """Manifest format 1 listed complete chunks but no files: read those chunks only."""
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    data = json.loads((out / "manifest.json").read_text())
    data["format"], data["version"] = 1, "0.1.0"
    for record in data["completed"]:
        del record["files"]
    data["completed"] = data["completed"][:3]
    (out / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RunReadError, match="15 of 20 patients"):
        open_run(out)
    ids = open_run(out, allow_incomplete=True)["patients"].collect()["patient_id"]
    assert sorted(ids.unique()) == list(range(15))
    with pytest.raises(RunError, match="format 1.*--overwrite"):
        run_fake(out, resume=True)


def test_an_overwrite_cut_short_leaves_a_run_that_overwrite_clears(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest is deleted last, so the folder stays recognisably a run."""
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    unlink = Path.unlink

    def cut(self: Path, missing_ok: bool = False) -> None:
        if self.name == "scenario.toml":
            raise KeyboardInterrupt
        unlink(self, missing_ok=missing_ok)

    with monkeypatch.context() as mp:
        mp.setattr(Path, "unlink", cut)
        with pytest.raises(KeyboardInterrupt):
            run_fake(out, overwrite=True, chunk_size=5)
    assert (out / "manifest.json").is_file() and not (out / lock.LOCK).exists()
    run_fake(out, overwrite=True, chunk_size=5)
    assert_same_tables(reference, out)


def test_resume_restores_a_deleted_scenario_copy(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    text = (out / "scenario.toml").read_text()
    (out / "scenario.toml").unlink()
    run_fake(out, resume=True)
    assert (out / "scenario.toml").read_text() == text


def test_a_manifest_pointing_outside_the_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_fake(out, chunk_size=5)
    data = json.loads((out / "manifest.json").read_text())
    data["completed"][0]["files"][0]["path"] = "../../elsewhere/part-0.parquet"
    (out / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RunReadError, match="leaves the run"):
        open_run(out)
    with pytest.raises(ValueError, match="leaves the run folder"):
        Manifest.load(out)
