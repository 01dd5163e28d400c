"""Command line: ``progression run | validate``.

Errors a user can fix (a bad scenario, a refused output folder) print one line to stderr and
exit with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from progression import __version__


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="progression",
        description="Simulate motor neuron disease cohorts one motor unit at a time.",
    )
    parser.add_argument("--version", action="version", version=f"progression {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a scenario and write a Parquet dataset")
    run.add_argument("scenario", type=Path, help="scenario TOML file")
    run.add_argument("--out", type=Path, required=True, help="output folder")
    run.add_argument("--patients", type=_positive_int, help="override cohort.patients")
    run.add_argument("--seed", type=_seed, help="override cohort.seed")
    run.add_argument("--workers", type=_positive_int, help="dask workers (1 = in process)")
    run.add_argument("--chunk-size", type=_positive_int, help="patients per chunk")
    run.add_argument("--scheduler", help="address of a running dask scheduler (tcp://host:port)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing output")

    val = sub.add_parser("validate", help="check a scenario file")
    val.add_argument("scenario", type=Path, nargs="+", help="scenario TOML file(s)")
    return parser


def _fail(message: str) -> int:
    print(f"progression: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from progression.scenario import ScenarioError, load_scenario

    args = build_parser().parse_args(argv)
    try:
        if args.command == "validate":
            for path in args.scenario:
                s = load_scenario(path)
                print(
                    f"{path}: ok ({s.name}; {s.cohort.patients} patients, arms: "
                    f"{', '.join(s.arm_names)}; hash {s.hash[:12]})"
                )
            return 0
        if args.command == "run":
            from progression.runner import RunError, run

            scenario = load_scenario(args.scenario, patients=args.patients, seed=args.seed)
            try:
                summary = run(
                    scenario,
                    args.out,
                    workers=args.workers,
                    chunk_size=args.chunk_size,
                    scheduler=args.scheduler,
                    resume=args.resume,
                    overwrite=args.overwrite,
                )
            except RunError as e:
                return _fail(str(e))
            except KeyboardInterrupt:
                print(
                    f"\nprogression: interrupted; resume with: progression run {args.scenario} "
                    f"--out {args.out} --resume",
                    file=sys.stderr,
                )
                return 130
            print(summary, file=sys.stderr)
            return 0
    except ScenarioError as e:
        return _fail(str(e))
    return 1


if __name__ == "__main__":
    sys.exit(main())
