"""Benchmarks: throughput, scaling and memory, against the literal model and the bandwidth bound.

    python benchmarks/run.py [--quick] [--json FILE]
    python benchmarks/run.py --scale [--scale-patients N] [--out DIR] [--json FILE]
    python benchmarks/run.py --queries RUN [--json FILE]

Prints a Markdown table and writes the figures as JSON. Motor-unit-steps count the units of
living patients in each simulated month (CONVENTIONS.md); compile and start-up time are
reported separately. ``--quick`` runs in a few minutes on 2 cores (CI checks that it runs).
The single-process throughput is given per wall second and per CPU second of the process (the
latter is the figure to quote when other work shares the machine).

``--scale`` runs only the end-to-end run of issue 18: ``als_natural_history`` with 10^6 patients
(``--scale-patients`` for another size) over its 10 years on 2 workers, and reports wall time,
patient-years per second, bytes per patient-year on disk, the largest worker's peak RSS and the
ready analysis queries on the dataset. At 10^6 patients it occupies both cores for about half
an hour and writes about 11 GB (to ``--out``, kept; otherwise to a temporary folder, removed).

Each ready query runs in a process of its own, so its peak RSS is its own (interpreter and
imports included: about 100 MB). ``--queries RUN`` times only them, on an existing run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from progression.body import Body  # noqa: E402
from progression.model import CohortModel, simulate_chunk  # noqa: E402
from progression.scenario import load_scenario  # noqa: E402

SCENARIO = ROOT / "scenarios" / "als_natural_history.toml"

#: Bytes the fused kernel must move per unit-step at the least: read the threshold (4), the
#: alive flag (1) and the fibres (4), write the fibres back (4).
BYTES_PER_UNIT_STEP = 13


def machine() -> dict:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "cpu": cpu,
        "python": platform.python_version(),
    }


def copy_bandwidth(n_bytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """Single-core memory copy bandwidth (bytes/s counting read plus write), best of repeats."""
    a = np.ones(n_bytes // 8)
    b = np.empty_like(a)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * n_bytes / best


#: The muscles whose MUNE a clinic measures (``exam.mune_muscles``), for the variant figure.
CLINIC_MUNE = ["APB", "ADM", "biceps", "TA", "EDB"]


def engine_throughput(patients: int, overrides: dict | None = None) -> dict:
    """Full model (all processes and examinations) in one process: unit-steps per second."""
    scenario = load_scenario(SCENARIO, patients=patients, overrides=overrides)
    t = time.perf_counter()
    simulate_chunk(scenario, np.arange(2))  # compile (or load) the kernel
    compile_s = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    result = simulate_chunk(scenario, np.arange(patients))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {
        "patients": patients,
        "seconds": wall,
        "cpu_seconds": cpu,
        "compile_seconds": compile_s,
        "unit_steps": result.unit_steps,
        "unit_steps_per_second_per_core": result.unit_steps / wall,
        "unit_steps_per_cpu_second": result.unit_steps / cpu,
        "kernel_unit_steps_per_second": result.unit_steps / result.timings["motor_units"],
        "examination_seconds": result.timings.get("examination", 0.0),
        "patient_years": result.patient_years,
        "phase_seconds": {k: round(v, 3) for k, v in result.timings.items()},
    }


def literal_comparison(patients: int, months: int) -> dict:
    """The fast engine and the literal one-agent-per-unit model on the same cohort and months.

    The literal model runs the processes (LMN and UMN death, reinnervation, atrophy, symptoms,
    death) but not the examinations, so the like-for-like speed-up leaves the fast engine's
    examination phase out; ``full_engine_speedup`` keeps it in.
    """
    from progression import literal

    scenario = load_scenario(SCENARIO, patients=patients)
    lit = literal.time_literal(scenario, patients, months)
    fast = CohortModel(scenario, np.arange(patients), scenario.arm_names[0])
    t = time.perf_counter()
    for _ in range(months):
        fast.step()
    wall = time.perf_counter() - t
    processes = wall - fast.timings.get("examination", 0.0)
    lit_rate = lit["unit_steps_per_second"]
    return {
        "patients": patients,
        "months": months,
        "literal_unit_steps_per_second": lit_rate,
        "fast_unit_steps_per_second": fast.unit_steps / processes,
        "fast_with_examinations_unit_steps_per_second": fast.unit_steps / wall,
        "literal_speedup": fast.unit_steps / processes / lit_rate,
        "full_engine_speedup": fast.unit_steps / wall / lit_rate,
    }


def run_cli(out: Path, patients: int, workers: int, chunk: int) -> tuple[float, int]:
    """Wall time and peak RSS (MB) of a worker process of a ``progression run`` (the client's
    when the run is in process)."""
    cmd = [
        sys.executable,
        str(Path(__file__).with_name("_measure.py")),
        str(SCENARIO),
        str(out),
        str(patients),
        str(workers),
        str(chunk),
    ]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    rss = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall, rss["worker_rss_mb"] or rss["client_rss_mb"]


#: (patients, chunk size) of the scaling runs, quick and full. Quick: 16 chunks, 8 per worker,
#: about 25 s of simulation in one worker, so that the cluster's start-up (about 3 s) does not
#: dominate the ratio as it did at 3,000 patients (12 chunks of 250: 1.4). Full: 80 chunks, 40
#: per worker, about 75 s in one worker: the 2 workers' extra start-up (a local cluster and two
#: interpreters importing the engine, about 1.3 s more than in process, reported apart) weighs
#: 2% of the ratio rather than the 4% it weighed at 20,000 patients (1.77 there; 1.92 without).
SCALING_SIZES = {True: (8000, 500), False: (40_000, 500)}


def scaling(tmp: Path, patients: int, chunk: int) -> dict:
    """Wall time of the same run on 1 and 2 workers, and the start-up of each (a run of 2
    patients: interpreter, imports, cluster, writing), whose difference is the simulation's."""
    run_cli(tmp / "warm-up", 20, 1, 20)  # compiled functions cached before timing
    s1, _ = run_cli(tmp / "s1", 2, 1, 1)
    s2, _ = run_cli(tmp / "s2", 2, 2, 1)
    w1, _ = run_cli(tmp / "w1", patients, 1, chunk)
    w2, _ = run_cli(tmp / "w2", patients, 2, chunk)
    return {
        "patients": patients,
        "chunk_size": chunk,
        "wall_1_worker_s": w1,
        "wall_2_workers_s": w2,
        "start_up_1_worker_s": s1,
        "start_up_2_workers_s": s2,
        "after_start_up": (w1 - s1) / (w2 - s2),
        "identical": tables_equal(tmp / "w1", tmp / "w2"),
    }


def scale_run(patients: int, out: Path | None) -> dict:
    """The end-to-end run of issue 18 (``--scale``): ``patients`` of ``als_natural_history``
    over its duration on 2 workers, chunks of 500, and the ready queries on what it wrote."""
    tmp = None if out is not None else Path(tempfile.mkdtemp(prefix="progression-scale-"))
    folder = out if out is not None else tmp / "run"
    try:
        run_cli(folder.parent / f"{folder.name}-warm-up", 20, 1, 20)  # compiled functions cached
        shutil.rmtree(folder.parent / f"{folder.name}-warm-up", ignore_errors=True)
        wall, rss = run_cli(folder, patients, 2, 500)
        manifest = json.loads((folder / "manifest.json").read_text())
        years = manifest["throughput"]["patient_years"]
        size = sum(f.stat().st_size for f in folder.rglob("*.parquet"))
        return {
            "patients": patients,
            "workers": 2,
            "chunk_size": 500,
            "wall_s": wall,
            "patient_years": years,
            "patient_years_per_second": years / wall,
            "output_bytes": size,
            "output_bytes_per_patient_year": size / years,
            "peak_rss_mb_largest_worker": rss,
            **query_figures(folder),
        }
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def tables_equal(a: Path, b: Path) -> bool:
    from analysis import open_run

    ra, rb = open_run(a), open_run(b)
    for name in ("patients", "visits", "muscles", "events"):
        fa, fb = ra[name].collect(), rb[name].collect()
        keys = [
            c for c in ("patient_id", "arm", "month", "muscle", "side", "event") if c in fa.columns
        ]
        if not fa.sort(keys).equals(fb.sort(keys)):
            return False
    return True


def query_figures(run: Path) -> dict:
    """Every ready analysis query (:data:`analysis.timing.QUERIES`) on a finished run, each in
    a process of its own (``python -m analysis.timing RUN --query NAME``): wall seconds
    (``analysis_query_seconds``) and that process's peak RSS in MB, interpreter and imports
    included (``analysis_query_peak_rss_mb``)."""
    from analysis.timing import QUERIES

    seconds, rss = {}, {}
    for q in QUERIES:
        cmd = [sys.executable, "-m", "analysis.timing", str(run), "--query", q]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        seconds[f"{q}_s"], rss[q] = row["seconds"], row["peak_rss_mb"]
    return {"analysis_query_seconds": seconds, "analysis_query_peak_rss_mb": rss}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--scale", action="store_true", help="only the million-patient run")
    parser.add_argument(
        "--scale-patients", type=int, default=1_000_000, help="patients of --scale (10^6)"
    )
    parser.add_argument("--out", type=Path, help="--scale writes its run here (kept)")
    parser.add_argument("--queries", type=Path, metavar="RUN",
                        help="only the ready analysis queries on an existing run")
    args = parser.parse_args(argv)
    if args.queries:
        res = {"machine": machine(), "mode": "queries", "run": str(args.queries),
               **query_figures(args.queries)}
        print(table(query_rows(res)))
        if args.json:
            args.json.write_text(json.dumps(res, indent=2, default=float))
        return res
    if args.scale:
        res = {"machine": machine(), "mode": "scale", **scale_run(args.scale_patients, args.out)}
        print(markdown_scale(res))
        if args.json:
            args.json.write_text(json.dumps(res, indent=2, default=float))
        return res
    quick = args.quick
    res: dict = {"machine": machine(), "mode": "quick" if quick else "full"}
    body = Body.from_muscles(load_scenario(SCENARIO).muscles())
    res["units_per_patient"] = body.n_units

    eng = engine_throughput(300 if quick else 2000)
    res["engine"] = eng
    res["unit_steps_per_second_per_core"] = eng["unit_steps_per_second_per_core"]
    clinic = engine_throughput(eng["patients"], {"exam.mune_muscles": CLINIC_MUNE})
    res["engine_clinic_mune"] = clinic
    res["unit_steps_per_second_per_core_clinic_mune"] = clinic["unit_steps_per_second_per_core"]

    bw = copy_bandwidth()
    bound = bw / BYTES_PER_UNIT_STEP
    res["copy_bandwidth_gb_s"] = bw / 1e9
    res["bandwidth_bound_unit_steps_per_second"] = bound
    res["bandwidth_bound_fraction"] = eng["unit_steps_per_second_per_core"] / bound

    try:
        lit = literal_comparison(40 if quick else 200, 24)
        res["literal"] = lit
        res["literal_speedup"] = lit["literal_speedup"]
        res["literal_speedup_full_engine"] = lit["full_engine_speedup"]
    except ImportError:
        res["literal_speedup"] = None

    tmp = Path(tempfile.mkdtemp(prefix="progression-bench-"))
    try:
        res["scaling"] = scaling(tmp, *SCALING_SIZES[quick])
        res["scaling_2_workers"] = res["scaling"]["wall_1_worker_s"] / res["scaling"][
            "wall_2_workers_s"
        ]
        res["scaling_2_workers_after_start_up"] = res["scaling"]["after_start_up"]

        sizes = [300, 1000] if quick else [1000, 10_000, 100_000]
        res["peak_rss_mb"] = {}
        for n in sizes:
            out = tmp / f"rss{n}"
            wall, rss = run_cli(out, n, 2, 500)
            manifest = json.loads((out / "manifest.json").read_text())
            tp = manifest["throughput"]
            size = sum(f.stat().st_size for f in out.rglob("*.parquet"))
            res["peak_rss_mb"][str(n)] = rss
            res.setdefault("runs", {})[str(n)] = {
                "wall_s": wall,
                "patient_years": tp.get("patient_years"),
                "output_bytes": size,
                "unit_steps_per_second": tp.get("unit_steps_per_second"),
            }
        largest = tmp / f"rss{sizes[-1]}"
        run_info = res["runs"][str(sizes[-1])]
        res["output_bytes_per_patient_year"] = run_info["output_bytes"] / run_info["patient_years"]
        res.update(query_figures(largest))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(markdown(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=float))
    return res


def markdown(res: dict) -> str:
    m = res["machine"]
    rows = [
        ("machine", f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}"),
        (
            "unit-steps / s / core (full model, 1 process)",
            f"{res['unit_steps_per_second_per_core']:.3g} ({res['engine']['patients']} patients);"
            f" per CPU second {res['engine']['unit_steps_per_cpu_second']:.3g}",
        ),
        ("phase seconds", ", ".join(f"{k} {v}" for k, v in res["engine"]["phase_seconds"].items())),
        (
            f"same, MUNE only in {', '.join(CLINIC_MUNE)} (exam.mune_muscles)",
            f"{res['unit_steps_per_second_per_core_clinic_mune']:.3g}; per CPU second"
            f" {res['engine_clinic_mune']['unit_steps_per_cpu_second']:.3g}",
        ),
        (
            "fused motor-unit kernel alone (unit-steps / s)",
            f"{res['engine']['kernel_unit_steps_per_second']:.3g}",
        ),
        ("kernel compile/load (s)", f"{res['engine']['compile_seconds']:.2f}"),
        ("copy bandwidth (GB/s, 1 core)", f"{res['copy_bandwidth_gb_s']:.1f}"),
        ("bandwidth bound (unit-steps/s)", f"{res['bandwidth_bound_unit_steps_per_second']:.3g}"),
        ("fraction of bound", f"{res['bandwidth_bound_fraction']:.3f}"),
        (
            "speed-up over literal model (same processes; with examinations)",
            "n/a"
            if res.get("literal_speedup") is None
            else f"{res['literal_speedup']:.0f}x; {res['literal_speedup_full_engine']:.0f}x",
        ),
        (
            "2-worker scaling (wall 1 / wall 2)",
            f"{res['scaling_2_workers']:.2f}; {res['scaling_2_workers_after_start_up']:.2f} less"
            f" start-up ({res['scaling']['start_up_1_worker_s']:.1f} s, "
            f"{res['scaling']['start_up_2_workers_s']:.1f} s); {res['scaling']['patients']}"
            f" patients (identical tables: {res['scaling']['identical']})",
        ),
        (
            "peak RSS per worker (MB)",
            ", ".join(f"{k} patients: {v:.0f}" for k, v in res["peak_rss_mb"].items()),
        ),
        ("output bytes per patient-year", f"{res['output_bytes_per_patient_year']:.0f}"),
        *[(f"{k} on the largest run", v) for k, v in query_rows(res)],
    ]
    for n, r in res["runs"].items():
        rows.append(
            (
                f"run of {n} patients (2 workers)",
                f"{r['wall_s']:.1f} s wall, {r['patient_years']:.0f} patient-years",
            )
        )
    return table(rows)


def markdown_scale(res: dict) -> str:
    m = res["machine"]
    rows = [
        ("machine", f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}"),
        ("patients (2 workers, chunks of 500)", f"{res['patients']}"),
        ("wall (s)", f"{res['wall_s']:.1f}"),
        ("patient-years", f"{res['patient_years']:.0f}"),
        ("patient-years / s", f"{res['patient_years_per_second']:.0f}"),
        ("output bytes per patient-year", f"{res['output_bytes_per_patient_year']:.0f}"),
        ("peak RSS of the largest worker (MB)", f"{res['peak_rss_mb_largest_worker']:.0f}"),
        *query_rows(res),
    ]
    return table(rows)


def table(rows: list[tuple[str, str]]) -> str:
    """A Markdown table of (figure, value) rows."""
    return "| figure | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def query_rows(res: dict) -> list[tuple[str, str]]:
    """Table rows of the ready queries: seconds and peak RSS of each query's process."""
    rss = res.get("analysis_query_peak_rss_mb", {})
    return [
        (f"query `{q[:-2]}`", f"{sec:.2f} s, peak RSS {rss[q[:-2]]:.0f} MB" if q[:-2] in rss
         else f"{sec:.2f} s")
        for q, sec in res["analysis_query_seconds"].items()
    ]


if __name__ == "__main__":
    main()
