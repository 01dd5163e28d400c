"""Bad inputs a user can make: each gives one line on stderr naming the file or option and what
was expected, exit code 2, a traceback never, and nothing written."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from progression.scenario import (
    MAX_SCENARIO_BYTES,
    Cohort,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from progression.studies import cli
from tests.conftest import SCENARIOS

ALS = SCENARIOS / "als_natural_history.toml"


def _one_error(capsys) -> str:
    """The single stderr line of the last command, without its ``progression: error:`` prefix."""
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("progression: error: "), err
    return lines[0].removeprefix("progression: error: ")


# ---------------------------------------------------------------------------------------------
# progression validate A B C


def test_validate_checks_every_file(tmp_path: Path, capsys) -> None:
    syntax = tmp_path / "syntax.toml"
    syntax.write_text("name = \n")
    missing = tmp_path / "missing.toml"
    assert cli.main(["validate", str(syntax), str(ALS), str(missing), str(ALS)]) == 2
    out, err = capsys.readouterr()
    assert [line.split(": ok ")[0] for line in out.splitlines()] == [str(ALS), str(ALS)]
    errors = err.splitlines()
    assert len(errors) == 2 and "Traceback" not in err
    assert errors[0].startswith(f"progression: error: {syntax}: line 1: malformed TOML")
    assert errors[1].startswith(f"progression: error: {missing}: cannot read scenario file")


def test_validate_all_good_exits_0(capsys) -> None:
    assert cli.main(["validate", str(ALS), str(ALS)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and err == ""


# ---------------------------------------------------------------------------------------------
# Scenario files: empty, too large


@pytest.mark.parametrize(
    "content",
    [b"", b"  \n\t\n", b"# a comment\n\n   # another\n", b"\xef\xbb\xbf\r\n"],
    ids=["0-bytes", "whitespace", "comments", "bom-only"],
)
def test_empty_scenario_file(tmp_path: Path, capsys, content: bytes) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_bytes(content)
    assert cli.main(["validate", str(empty)]) == 2
    assert _one_error(capsys) == f"{empty}: the scenario file is empty"
    with pytest.raises(ScenarioError, match="^inline: the scenario file is empty$"):
        parse_scenario(content.decode("utf-8-sig"), "inline")


def test_empty_scenario_file_run_writes_nothing(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    assert cli.main(["run", str(empty), "--out", str(out), "--workers", "1"]) == 2
    assert _one_error(capsys) == f"{empty}: the scenario file is empty"
    assert not out.exists()


def _padded(size: int) -> bytes:
    """The ALS scenario padded with a comment to exactly ``size`` bytes."""
    text = ALS.read_bytes().rstrip(b"\n") + b"\n# "
    return text + b"x" * (size - len(text) - 1) + b"\n"


def test_scenario_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(_padded(MAX_SCENARIO_BYTES))
    assert path.stat().st_size == MAX_SCENARIO_BYTES == 2**20
    assert load_scenario(path).name == load_scenario(ALS).name


def test_scenario_file_over_the_limit_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(_padded(MAX_SCENARIO_BYTES + 1))
    expected = f"{path}: {2**20 + 1} bytes; a scenario file may be at most 1 MiB"
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert str(e.value) == expected
    assert cli.main(["validate", str(path)]) == 2
    assert _one_error(capsys) == expected


def test_scenario_size_is_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff" * (3 * 2**20))  # not UTF-8, and too large: the size is reported
    with pytest.raises(ScenarioError, match=r": 3145728 bytes; a scenario file may be at most"):
        load_scenario(path)


# ---------------------------------------------------------------------------------------------
# --patients and --seed beyond the scenario schema's maxima


def _cohort_maximum(key: str) -> int:
    return next(f.metadata["hi"] for f in dataclasses.fields(Cohort) if f.name == key)


PATIENTS_MAX = _cohort_maximum("patients")
SEED_MAX = _cohort_maximum("seed")


@pytest.mark.parametrize(
    ("command", "option", "maximum"),
    [
        ("run", "--patients", PATIENTS_MAX),
        ("run", "--seed", SEED_MAX),
        ("sweep", "--patients", PATIENTS_MAX),
        ("validate-model", "--patients", PATIENTS_MAX),
        ("validate-model", "--seed", SEED_MAX),
    ],
)
def test_option_beyond_the_schema_maximum_names_the_option(
    tmp_path: Path, capsys, command: str, option: str, maximum: int
) -> None:
    out = tmp_path / "out"
    scenario = [] if command == "validate-model" else [str(SCENARIOS / "sensitivity_als.toml")]
    too_many = str(maximum + 1)
    with pytest.raises(SystemExit) as e:
        cli.main([command, *scenario, "--out", str(out), option, too_many])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "scenario" not in err.splitlines()[-1]
    assert err.splitlines()[-1] == (
        f"progression {command}: error: argument {option}: "
        f"expected at most {maximum}, got {too_many!r}"
    )
    assert not out.exists()


def test_option_at_the_schema_maximum_is_accepted(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(
        ["run", str(ALS), "--out", str(tmp_path), "--patients", str(PATIENTS_MAX),
         "--seed", str(SEED_MAX)]
    )
    assert (args.patients, args.seed) == (10**9, 2**63 - 1)


# ---------------------------------------------------------------------------------------------
# An arm name that hive partitioning reads back as null


def test_hive_default_partition_arm_name_is_refused(tmp_path: Path, capsys) -> None:
    text = ALS.read_text() + "\n[cohort.arms.__HIVE_DEFAULT_PARTITION__]\n"
    path = tmp_path / "hive.toml"
    path.write_text(text)
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "--patients", "20",
                     "--workers", "1"]) == 2
    message = _one_error(capsys)
    assert message.startswith(f"{path}: cohort.arms.__HIVE_DEFAULT_PARTITION__: expected ")
    assert "missing" in message
    assert not out.exists()
    with pytest.raises(ScenarioError, match=r"cohort\.arms\.__HIVE_DEFAULT_PARTITION__: "):
        load_scenario(ALS, overrides={"cohort.arms": {"__HIVE_DEFAULT_PARTITION__": {}}})


# ---------------------------------------------------------------------------------------------
# progression validate-model --targets FILE


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('title = "no targets here"\n',
         "expected at least one [[target]] table with id and value; found none"),
        ("", "expected at least one [[target]] table with id and value; found none"),
        ("target = 3\n", "target: expected [[target]] tables with id and value, got 3"),
        ("x = \n", "malformed TOML: Invalid value (at line 1, column 5)"),
        ('[[target]]\nid = "a"\n', "target #1: expected 'id' and 'value'; 'value' is missing"),
        ("[[target]]\nvalue = 1\n", "target #1: expected 'id' and 'value'; 'id' is missing"),
        ('[[target]]\nid = "a"\nvalue = "abc"\n',
         "target #1 ('a'): value: expected a number or a list of numbers, got 'abc'"),
        ('[[target]]\nid = "a"\nvalue = 1\nrange = 3\n',
         "target #1 ('a'): range: expected [low, high], got 3"),
    ],
    ids=["no-target", "0-bytes", "not-tables", "malformed", "no-value", "no-id", "bad-value",
         "bad-range"],
)
def test_validate_model_bad_targets_file(
    tmp_path: Path, capsys, content: str, expected: str
) -> None:
    targets = tmp_path / "targets.toml"
    targets.write_text(content)
    out = tmp_path / "validation"
    code = cli.main(["validate-model", "--targets", str(targets), "--out", str(out),
                     "--patients", "20", "--workers", "1"])
    assert code == 2
    assert _one_error(capsys) == f"{targets}: {expected}"
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# report and power: --out an existing file


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A 20-patient ALS natural history run, shared by the tests that read a run."""
    run = tmp_path_factory.mktemp("run") / "als"
    code = cli.main(["run", str(ALS), "--out", str(run), "--patients", "20", "--workers", "1"])
    assert code == 0
    return run


@pytest.mark.parametrize("command", ["report", "power"])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["", "overwrite"])
def test_out_that_is_a_file_is_refused_untouched(
    small_run: Path, tmp_path: Path, capsys, command: str, overwrite: list[str]
) -> None:
    capsys.readouterr()  # the fixture's run summary
    out = tmp_path / "F"
    out.write_text("keep me\n")
    before = out.stat()
    assert cli.main([command, str(small_run), "--out", str(out), *overwrite]) == 2
    assert _one_error(capsys) == f"{out} exists and is not a folder"
    after = out.stat()
    assert out.read_text() == "keep me\n" and after.st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["F"]
