"""The command line's shape: every subcommand that simulates takes the same options."""

from __future__ import annotations

from progression.studies import cli
from progression.studies.sweep import plan_sweep
from tests.conftest import SCENARIOS

SIMULATION_OPTIONS = {"patients", "seed", "workers", "chunk_size", "scheduler"}


def test_every_simulating_subcommand_takes_the_same_options() -> None:
    parser = cli.build_parser()
    base = {"run": ["s.toml", "--out", "o"], "sweep": ["s.toml", "--out", "o"],
            "validate-model": []}
    for command, args in base.items():
        options = ["--patients", "7", "--seed", "3", "--workers", "1", "--chunk-size", "2",
                   "--scheduler", "tcp://127.0.0.1:1"]
        parsed = vars(parser.parse_args([command, *args, *options]))
        assert {k: parsed[k] for k in SIMULATION_OPTIONS} == {
            "patients": 7, "seed": 3, "workers": 1, "chunk_size": 2,
            "scheduler": "tcp://127.0.0.1:1"}, command


def test_sweep_seed_overrides_the_cohort_seed() -> None:
    plan = plan_sweep(SCENARIOS / "sensitivity_als.toml", patients=2, seed=11)
    assert plan.base.cohort.seed == 11
    assert plan.hash != plan_sweep(SCENARIOS / "sensitivity_als.toml", patients=2).hash
