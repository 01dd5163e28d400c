"""Benchmark of ``progression power``: every endpoint x 6 sample sizes x 1000 replicate trials
(each with its null trials) from a finished trial run.

    python benchmarks/power_bench.py RUN [--patients 20000] [--replicates 1000] [--json FILE]

``RUN`` is a finished run of ``scenarios/trial_als.toml``; if it does not exist it is made first
with ``progression run scenarios/trial_als.toml --patients N --out RUN`` (several minutes for
20,000 patients on 2 cores; not timed here). The target (issue 10): 10 endpoints x 6 sizes x 1000
replicates from a 20,000-patient run in under 2 minutes on the 2-core machine.
:func:`power_benchmark` is what ``benchmarks/run.py`` can call.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.endpoints import ENDPOINTS, load_trial  # noqa: E402
from analysis.power_report import write_outputs  # noqa: E402
from analysis.trials import simulate_power  # noqa: E402

SCENARIO = ROOT / "scenarios" / "trial_als.toml"
SIZES = (50, 100, 200, 400, 800, 1600)


def make_trial_run(out: Path, patients: int) -> float:
    """Simulate the shipped trial with ``patients`` patients into ``out``; wall seconds."""
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "progression", "run", str(SCENARIO), "--patients", str(patients),
         "--out", str(out)],
        check=True,
        cwd=ROOT,
    )
    return time.perf_counter() - t


def power_benchmark(
    run: str | Path,
    endpoints: list[str] | None = None,
    sizes: tuple[int, ...] = SIZES,
    replicates: int = 1000,
    seed: int = 0,
) -> dict:
    """Time what ``progression power RUN --n-per-arm 50,...,1600 --replicates 1000`` does:
    load the per-patient summaries, simulate treatment and null trials, write the outputs.

    Returns:
        ``patients_enrolled``, ``endpoints``, ``sizes``, ``replicates``, ``load_s``,
        ``simulate_s``, ``write_s``, ``total_s`` and ``trials_per_s`` (replicate trials, all
        endpoints analysed in each, treatment and null counted).
    """
    names = endpoints or list(ENDPOINTS)
    t0 = time.perf_counter()
    data = load_trial(run, names)
    t1 = time.perf_counter()
    power = simulate_power(data, list(sizes), replicates, 0.05, 2, seed)
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_outputs(power, data, tmp, str(run), 0.05)
    t3 = time.perf_counter()
    trials = 2 * len(sizes) * replicates * (len(data.arms) - 1)
    return {
        "patients_enrolled": int(len(data.ids)),
        "endpoints": len(names),
        "sizes": list(sizes),
        "replicates": replicates,
        "load_s": round(t1 - t0, 2),
        "simulate_s": round(t2 - t1, 2),
        "write_s": round(t3 - t2, 2),
        "total_s": round(t3 - t0, 2),
        "trials_per_s": round(trials / (t2 - t1), 1),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="finished trial run (made if absent)")
    p.add_argument("--patients", type=int, default=20000, help="cohort size if the run is made")
    p.add_argument("--replicates", type=int, default=1000)
    p.add_argument("--endpoints", help="comma-separated (default: all)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    made = None
    if not (args.run / "manifest.json").exists():
        made = make_trial_run(args.run, args.patients)
    names = args.endpoints.split(",") if args.endpoints else None
    res = power_benchmark(args.run, names, replicates=args.replicates)
    if made is not None:
        res["run_made_s"] = round(made, 1)
    print(
        f"power: {res['endpoints']} endpoints x {len(res['sizes'])} sizes x {res['replicates']} "
        f"replicates (+ null) from {res['patients_enrolled']} enrolled patients: load "
        f"{res['load_s']} s, simulate {res['simulate_s']} s, write {res['write_s']} s, total "
        f"{res['total_s']} s"
    )
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
