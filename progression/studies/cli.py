"""Command line: ``progression run | validate | verify | report | sweep | sensitivity |
export-scans | power | validate-model | replay | explore``.

Errors a user can fix (a bad scenario, a refused output folder) print one line to stderr and
exit with code 2, without a traceback. A run stopped by Ctrl-C exits 130, by SIGTERM 143.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from progression import __version__
from progression.progress import ProgressBar


def _cohort_maximum(key: str) -> int:
    """The largest ``cohort.<key>`` a scenario may have: the schema's ``_range`` metadata."""
    from dataclasses import fields

    from progression.scenario import Cohort

    return next(f.metadata["hi"] for f in fields(Cohort) if f.name == key)


def _integer(minimum: int, maximum_of: str | None = None):
    """An argparse type: an integer of at least ``minimum`` and, if ``maximum_of`` names a
    ``cohort`` key that the option overrides, at most that key's maximum (so that the error
    names the option, not the scenario file)."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        maximum = _cohort_maximum(maximum_of) if maximum_of else None
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"expected at most {maximum}, got {text!r}")
        return value

    return parse


_INCOMPLETE_HELP = "read the complete chunks of an unfinished run (said on every output)"
_positive_int = _integer(1)
_patients = _integer(1, "patients")
_seed = _integer(0, "seed")


def _simulation_options(parser: argparse.ArgumentParser, patients_help: str) -> None:
    """The options of every subcommand that simulates: cohort size and seed, and where and in
    what chunks it runs."""
    parser.add_argument("--patients", type=_patients, help=patients_help)
    parser.add_argument("--seed", type=_seed, help="override cohort.seed")
    parser.add_argument("--workers", type=_positive_int, help="dask workers (1 = in process)")
    parser.add_argument("--chunk-size", type=_positive_int, help="patients per chunk")
    parser.add_argument("--scheduler",
                        help="address of a running dask scheduler (tcp://host:port)")


def _reads_a_run(parser: argparse.ArgumentParser, out_help: str, overwrite_help: str) -> None:
    """The arguments of every subcommand that reads a run and writes results from it."""
    parser.add_argument("run", type=Path, help="run folder (the --out of progression run)")
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--overwrite", action="store_true", help=overwrite_help)
    parser.add_argument("--allow-incomplete", action="store_true", help=_INCOMPLETE_HELP)


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
    _simulation_options(run, "override cohort.patients")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing output")

    val = sub.add_parser("validate", help="check a scenario file")
    val.add_argument("scenario", type=Path, nargs="+", help="scenario TOML file(s)")

    ver = sub.add_parser("verify", help="check a run's files against its manifest")
    ver.add_argument("run", type=Path, help="run or sweep folder")
    ver.add_argument("--quick", action="store_true", help="check sizes only, not SHA-256")

    rep = sub.add_parser("report", help="write an HTML report of a run (figures and tables)")
    _reads_a_run(rep, "folder for report.html", "replace an existing report")

    swp = sub.add_parser("sweep", help="run a scenario's [sweep]: every point as one job")
    swp.add_argument("scenario", type=Path, help="scenario TOML file with a [sweep] section")
    swp.add_argument("--out", type=Path, required=True, help="output folder")
    _simulation_options(swp, "override cohort.patients (per point)")
    swp.add_argument("--yes", action="store_true", help="run even if the output may not fit")
    mode = swp.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing output")

    sen = sub.add_parser("sensitivity", help="Sobol or Morris indices of a sweep's outcomes")
    sen.add_argument("sweep", type=Path, help="sweep folder (the --out of progression sweep)")
    sen.add_argument("--out", type=Path, required=True, help="folder for sensitivity.*")
    sen.add_argument("--overwrite", action="store_true", help="replace existing results")

    exs = sub.add_parser("export-scans", help="write each recorded CMAP scan as an S,A CSV file")
    _reads_a_run(exs, "folder for the CSV files", "replace existing CSV files")

    pw = sub.add_parser("power", help="power and sample size per endpoint by simulated trials")
    _reads_a_run(pw, "folder for power.parquet, .csv, .html", "replace existing results")
    pw.add_argument("--n-per-arm", default="50,100,200,400", help="sizes per arm, e.g. 50,100,200")
    pw.add_argument("--replicates", default="1000", help="simulated trials per size (default 1000)")
    pw.add_argument("--alpha", default="0.05", help="significance level (default 0.05)")
    pw.add_argument("--sided", default="2", help="1 (in the direction of benefit) or 2 (default)")
    pw.add_argument("--endpoints", help="comma-separated endpoint names (default: all)")
    pw.add_argument("--seed", default="0", help="seed of the replicate draws (default 0)")
    pw.add_argument("--visit-interval", help="analyse every k-th month of trial visits")
    pw.add_argument("--trial-months", help="trial length T (at most the run's trial)")
    pw.add_argument("--dropout", help="extra dropout per month on top of the run's")
    pw.add_argument("--enrich", help="screening criterion, e.g. 'dfs >= 0.5' (bare number: dfs)")

    vm = sub.add_parser("validate-model", help="compare shipped scenarios with published figures")
    vm.add_argument("--targets", type=Path, help="targets.toml (default validation/targets.toml)")
    vm.add_argument("--out", type=Path, default=Path("runs/validation"),
                    help="folder for the runs and validation.md (default runs/validation)")
    _simulation_options(vm, "patients per scenario (default 500)")
    vm.add_argument("--seeds", type=_positive_int, default=1,
                    help="judge every target at this many cohort seeds (default 1)")
    rp = sub.add_parser("replay", help="re-simulate one patient of a run: its rows, its motor "
                        "units month by month and a figure per muscle")
    rp.add_argument("run", type=Path, help="run folder (the --out of progression run)")
    rp.add_argument("--patient", type=_integer(0), required=True, help="patient id")
    rp.add_argument("--arm", help="arm (default: the scenario's first)")
    rp.add_argument("--out", type=Path, required=True, help="folder for the replay")
    rp.add_argument("--overwrite", action="store_true", help="replace an existing replay")
    rp.add_argument("--muscles", help="draw only these muscles, e.g. APB,ADM (default: all)")

    ex = sub.add_parser("explore", help="open a small cohort in the browser (Mesa SolaraViz)")
    ex.add_argument("scenario", type=Path, nargs="?", help="scenario TOML file "
                    "(default scenarios/mnd_population.toml)")
    ex.add_argument("--patients", type=_integer(1), default=30,
                    help="patients in the explorer's cohort (default 30, at most 100)")
    ex.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ex.add_argument("--port", type=_integer(1), default=8765, help="port (default 8765)")
    ex.add_argument("--no-open", action="store_true", help="do not open a browser")
    return parser


def _replay(args: argparse.Namespace) -> int:
    """``progression replay``: exit 0 when the replayed rows equal the stored ones, 1 when
    they differ (each table named), 2 when the replay cannot be made."""
    from progression.studies.replay import ReplayError, replay

    muscles = None
    if args.muscles:
        names = {m.strip() for m in args.muscles.split(",") if m.strip()}
        muscles = [(m, sd) for m in sorted(names) for sd in ("left", "right", "midline")]
    try:
        r = replay(args.run, args.patient, args.arm, args.out, overwrite=args.overwrite,
                   muscles=_existing_pools(args.run, muscles))
    except ReplayError as e:
        return _fail(str(e))
    print(f"patient {r.patient} ({r.arm}) -> {r.out}: {len(r.figures)} figures, "
          f"{r.history['units'].num_rows:,} unit-months")
    if not r.compared:
        print(f"progression: warning: {args.run} holds no rows of patient {r.patient} (an "
              "incomplete run): nothing to compare with", file=sys.stderr)
        return 0
    for name, why in r.differences.items():
        print(f"progression: replayed {name} differ from the run's: {why}", file=sys.stderr)
    if r.identical:
        print(f"identical to the run's rows in {', '.join(r.compared)}")
    return 0 if r.identical else 1


def _existing_pools(run: Path, muscles: list[tuple[str, str]] | None):
    """``muscles`` (name, side) restricted to the pools of the run's body map; one-line error
    for a name it does not have."""
    if muscles is None:
        return None
    from progression.body import Body
    from progression.studies.replay import ReplayError, run_scenario

    body = Body.from_muscles(run_scenario(run).muscles())
    pools = {(m.name, m.side) for m in body.muscles}
    unknown = sorted({m for m, _ in muscles} - {m for m, _ in pools})
    if unknown:
        raise ReplayError(f"--muscles: no muscle {unknown[0]!r}; the body map has "
                          f"{', '.join(sorted({m for m, _ in pools}))}")
    return [p for p in muscles if p in pools]


def _explore(args: argparse.Namespace) -> int:
    """``progression explore``: the SolaraViz page of :mod:`progression.studies.explore`."""
    from progression.studies.explore import ExploreError, serve

    try:
        return serve(args.scenario, patients=args.patients, host=args.host, port=args.port,
                     open_browser=not args.no_open)
    except ExploreError as e:
        return _fail(str(e))


def _validate_model(args: argparse.Namespace) -> int:
    """``progression validate-model``: exit 0 when every target passes, 1 when one fails."""
    from progression.runner import RunError
    from progression.studies.calibration import DEFAULT_PATIENTS, CalibrationError, validate_model

    try:
        v = validate_model(
            args.targets, args.out, patients=args.patients or DEFAULT_PATIENTS,
            workers=args.workers, seed=args.seed, chunk_size=args.chunk_size,
            scheduler=args.scheduler, progress=sys.stderr.isatty(), seeds=args.seeds,
        )
    except (CalibrationError, RunError) as e:
        return _fail(str(e))
    print(v.text())
    print(f"{v.markdown} ({v.seconds:.0f} s)", file=sys.stderr)
    return 1 if v.failed else 0


def _export_scans(args: argparse.Namespace) -> int:
    """``progression export-scans``: one CSV per recorded scan (:mod:`analysis.export`)."""
    from analysis.export import INCOMPLETE_NOTE, ExportError, export_scans

    try:
        paths = export_scans(args.run, args.out, overwrite=args.overwrite,
                             allow_incomplete=args.allow_incomplete)
    except ExportError as e:
        return _fail(str(e))
    if (args.out / INCOMPLETE_NOTE).is_file():
        print(f"progression: warning: {(args.out / INCOMPLETE_NOTE).read_text().strip()}",
              file=sys.stderr)
    print(f"{len(paths)} scans -> {args.out}", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    """``progression verify``: 0 when the run is complete and every file is as recorded, 1
    when it is incomplete or damaged, 2 when it is not a run."""
    from analysis.io import resume_command
    from progression import lock
    from progression.manifest import verify_run

    try:
        v = verify_run(args.run, checksum=not args.quick)
    except FileNotFoundError:
        return _fail(f"{args.run} is not a progression run (no manifest.json)")
    except ValueError as e:
        return _fail(str(e))
    m = v.manifest
    for k, problem in sorted(v.damaged.items()):
        print(f"{args.run}: chunk {k} damaged: {problem}")
    if v.unlisted:
        print(f"{args.run}: {len(v.unlisted)} Parquet files no complete chunk lists (readers "
              f"ignore them; --resume removes them), e.g. {v.unlisted[0]}")
    if v.owner is not None:
        print(f"{args.run}: in use by {lock.describe(v.owner)}")
    checked = "sizes" if args.quick else "sizes and SHA-256"
    done = m.totals()["patients"]
    state = "complete" if m.is_complete() else "incomplete"
    print(f"{args.run}: {state} run, {done:,} of {m.patients:,} patients "
          f"({len(m.completed)} of {len(m.chunks)} chunks); {v.files} files, "
          f"{v.bytes / 1e6:,.1f} MB, {len(v.damaged)} damaged chunks ({checked} checked)")
    if not m.is_complete() or v.damaged:
        command = resume_command(args.run, m.scenario_path if m.prefixes else None)
        print(f"{args.run}: complete or repair it with: {command}")
    return 0 if v.ok else 1


def _sweep(args: argparse.Namespace) -> int:
    """``progression sweep``: plan (validate), check the disk, run, summarise."""
    from analysis.io import resume_command
    from progression.runner import RunError, RunInterrupted
    from progression.studies.sweep import SweepError, plan_sweep, run_sweep

    plan = plan_sweep(args.scenario, patients=args.patients, seed=args.seed)  # ScenarioError
    try:
        summary = run_sweep(
            plan, args.out, workers=args.workers, chunk_size=args.chunk_size,
            scheduler=args.scheduler, resume=args.resume, overwrite=args.overwrite, yes=args.yes,
        )
    except RunInterrupted as e:
        return _interrupted(e, resume_command(args.out, args.scenario))
    except (RunError, SweepError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _interrupted(None, resume_command(args.out, args.scenario))
    print(summary, file=sys.stderr)
    return 0


def _interrupted(e: Exception | None, resume: str) -> int:
    """Say how to resume; exit 128 + the signal (130 for Ctrl-C, 143 for SIGTERM)."""
    import signal

    signum = getattr(e, "signum", signal.SIGINT)
    what = "terminated" if signum == signal.SIGTERM else "interrupted"
    print(f"\nprogression: {what}; resume with: {resume}", file=sys.stderr)
    return 128 + int(signum)


def _sensitivity(args: argparse.Namespace) -> int:
    from analysis.sensitivity import SensitivityError, write_sensitivity

    try:
        result = write_sensitivity(args.sweep, args.out, overwrite=args.overwrite)
    except SensitivityError as e:
        return _fail(str(e))
    for outcome, why in result.skipped.items():
        print(f"progression: {outcome} not analysed: {why}", file=sys.stderr)
    print(args.out / "sensitivity.html")
    return 0


def _power(args: argparse.Namespace) -> int:
    """``progression power``: simulated trials per endpoint (:func:`analysis.trials.power_command`),
    with a progress bar on a terminal."""
    from analysis.trials import PowerError, power_command

    progress = _TrialsProgress(sys.stderr)
    try:
        _, paths = power_command(
            **_power_request(args), progress=progress,
            log=lambda line: print(line, file=sys.stderr),
        )
    except PowerError as e:
        return _fail(str(e))
    finally:
        progress.close()
    print(paths["html"])
    return 0


def _power_request(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`analysis.trials.power_command` from ``progression
    power``'s (string) options, each checked.

    Raises:
        analysis.trials.PowerError: one line naming the option (exit code 2).
    """
    from analysis.endpoints import TrialOptions
    from analysis.trials import PowerError

    alpha = _number(args.alpha, "--alpha", float)
    if not 0 < alpha < 1:
        raise PowerError(f"--alpha: must lie strictly between 0 and 1, got {args.alpha!r}")
    replicates = _number(args.replicates, "--replicates", int)
    if replicates < 10:
        raise PowerError(f"--replicates: at least 10 replicate trials, got {args.replicates!r}")
    sided = _number(args.sided, "--sided", int)
    if sided not in (1, 2):
        raise PowerError(f"--sided: 1 or 2, got {args.sided!r}")
    seed = _number(args.seed, "--seed", int, 0)
    if seed < 0:
        raise PowerError(f"--seed: an integer >= 0, got {args.seed!r}")
    dropout = _number(args.dropout, "--dropout", float, 0.0)
    if dropout < 0:
        raise PowerError(f"--dropout: extra dropout per month must be >= 0, got {args.dropout!r}")
    options = TrialOptions(
        trial_months=_number(args.trial_months, "--trial-months", float),
        visit_interval=_number(args.visit_interval, "--visit-interval", float, 1.0),
        dropout_per_month=dropout,
        enrich=args.enrich,
        seed=seed,
    )
    return dict(
        run=args.run, out=args.out, n_per_arm=_sizes(args.n_per_arm), replicates=replicates,
        alpha=alpha, sided=sided, seed=seed, endpoints=args.endpoints, options=options,
        overwrite=args.overwrite, allow_incomplete=args.allow_incomplete,
    )


def _number(text: str | None, option: str, cast, default=None):
    """``text`` as an int or a finite float (``cast``), ``default`` if absent; a
    :class:`analysis.trials.PowerError` naming ``option`` otherwise."""
    import math

    from analysis.trials import PowerError

    if text is None:
        return default
    try:
        value = cast(str(text).strip())
    except ValueError:
        what = "an integer" if cast is int else "a number"
        raise PowerError(f"{option}: expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise PowerError(f"{option}: expected a finite number, got {text!r}")
    return value


def _sizes(text: str) -> list[int]:
    """``--n-per-arm 50,100,200`` -> ``[50, 100, 200]`` (sorted, unique); one-line errors."""
    from analysis.trials import PowerError

    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    if not parts:
        raise PowerError(f"--n-per-arm: expected sizes like 50,100,200, got {text!r}")
    sizes = []
    for p in parts:
        try:
            n = int(p)
        except ValueError:
            raise PowerError(f"--n-per-arm: {p!r} is not a whole number of patients") from None
        if n < 2:
            raise PowerError(f"--n-per-arm: {n} is too small (at least 2 patients per arm)")
        sizes.append(n)
    return sorted(set(sizes))


class _TrialsProgress:
    """``progress(done, total)`` for :func:`analysis.trials.simulate_power`: the runner's
    progress bar on ``stream`` when it is a terminal (counting replicate trials), closed when
    the last trial is done or by :meth:`close`."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = ProgressBar(total, 0, self.stream, self.stream.isatty(), "trials")
        self.bar.update(done - self.bar.done)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _fail(message: str) -> int:
    print(f"progression: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from progression.scenario import ScenarioError, load_scenario

    args = build_parser().parse_args(argv)
    if args.command in ("run", "sweep"):
        from progression.memory import claim_process

        claim_process()
    if args.command == "sensitivity":
        return _sensitivity(args)
    if args.command == "export-scans":
        return _export_scans(args)
    if args.command == "verify":
        return _verify(args)
    if args.command == "power":
        return _power(args)
    if args.command == "replay":
        from progression.studies.replay import ReplayError

        try:
            return _replay(args)
        except ReplayError as e:
            return _fail(str(e))
    if args.command == "explore":
        return _explore(args)
    if args.command == "validate-model":
        try:
            return _validate_model(args)
        except ScenarioError as e:
            return _fail(str(e))
    if args.command == "report":
        from analysis.report import ReportError, write_report

        try:
            path = write_report(args.run, args.out, overwrite=args.overwrite,
                                allow_incomplete=args.allow_incomplete)
        except ReportError as e:
            return _fail(str(e))
        print(path)
        return 0
    try:
        if args.command == "validate":
            # Every file is checked: an ok line for each good one, an error line for each bad one.
            status = 0
            for path in args.scenario:
                try:
                    s = load_scenario(path)
                except ScenarioError as e:
                    status = _fail(str(e))
                    continue
                print(
                    f"{path}: ok ({s.name}; {s.cohort.patients} patients, arms: "
                    f"{', '.join(s.arm_names)}; hash {s.hash[:12]})"
                )
            return status
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "run":
            from analysis.io import resume_command
            from progression.runner import RunError, RunInterrupted, run

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
            except RunInterrupted as e:
                return _interrupted(e, resume_command(args.out))
            except RunError as e:
                return _fail(str(e))
            except KeyboardInterrupt:
                return _interrupted(None, f"progression run {args.scenario} --out {args.out} "
                                          "--resume")
            print(summary, file=sys.stderr)
            return 0
    except ScenarioError as e:
        return _fail(str(e))
    return 1


if __name__ == "__main__":
    sys.exit(main())
