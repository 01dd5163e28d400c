"""Bad inputs a user can make: each gives one line on stderr naming the file or option and what
was expected, exit code 2, a traceback never, and nothing written."""

from __future__ import annotations

from pathlib import Path

from progression import cli
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
