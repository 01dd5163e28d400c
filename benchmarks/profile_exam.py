"""Where the full model's time goes: CPU seconds per phase and per step of the examiner.

    python benchmarks/profile_exam.py [--patients 2000] [--clinic]

Runs ``als_natural_history`` in one process as ``benchmarks/run.py`` measures it (after a
2-patient run that compiles or loads the compiled functions) and prints the CPU seconds of the
run, unit-steps per CPU second, and the CPU seconds of each stage: the cohort's set-up (latent
draws, initial state, the examiner's stimulation thresholds), each phase of a step
(:attr:`~progression.model.CohortModel.PHASES`), the tables, and what is left (the chunk's
concatenation and bookkeeping); then each step of :class:`progression.exam.Examiner` and the
incremental MUNE. CPU seconds are the figure to quote when other work shares the machine.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from progression import exam  # noqa: E402
from progression.exam import scans  # noqa: E402
from progression.model import CohortModel, simulate_chunk  # noqa: E402
from progression.scenario import load_scenario  # noqa: E402

SCENARIO = ROOT / "scenarios" / "als_natural_history.toml"
CLINIC_MUNE = ["APB", "ADM", "biceps", "TA", "EDB"]
#: The examiner's steps timed (methods of :class:`~progression.exam.Examiner`).
STEPS = (
    "__init__", "examine", "_read_state", "_nerve_conduction", "_record_scans",
    "_strength_and_wasting", "_reflexes_and_tone", "_needle_emg", "_tms", "_bedside_signs",
    "_function_scores", "_diagnose", "_record",
)


def timed(owner, name: str, seconds: dict) -> None:
    """Replace ``owner.name`` by a wrapper adding its CPU seconds to ``seconds[name]``."""
    f = getattr(owner, name)

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        t = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.process_time() - t

    setattr(owner, name, wrapper)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--clinic", action="store_true", help="MUNE in the clinic's muscles")
    args = parser.parse_args(argv)
    over = {"exam.mune_muscles": CLINIC_MUNE} if args.clinic else None
    scenario = load_scenario(SCENARIO, patients=args.patients, overrides=over)
    seconds: dict[str, float] = {}
    stages: dict[str, float] = {}
    timed(CohortModel, "__init__", stages)
    for _, method in CohortModel.PHASES:
        timed(CohortModel, method, stages)
    timed(CohortModel, "results", stages)
    for name in STEPS:
        timed(exam.Examiner, name, seconds)
    timed(scans, "incremental_mune", seconds)
    simulate_chunk(scenario, np.arange(2))
    seconds.clear()
    stages.clear()
    t, c = time.perf_counter(), time.process_time()
    result = simulate_chunk(scenario, np.arange(args.patients))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    print(f"{args.patients} patients: {wall:.2f} s wall, {cpu:.2f} s CPU, "
          f"{result.unit_steps / cpu:.3g} unit-steps per CPU second")
    names = {"__init__": "set-up", "results": "tables", **{m: p for p, m in CohortModel.PHASES}}
    stages = {names[k]: v for k, v in stages.items()}
    stages["other"] = cpu - sum(stages.values())
    print("stages (CPU s):", ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    print("examiner (CPU s):", ", ".join(
        f"{k} {v:.3f}" for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])))
    return {
        "wall_s": wall, "cpu_s": cpu, "phases": result.timings, "stages": stages,
        "examiner": seconds,
    }


if __name__ == "__main__":
    main()
