"""Exact replay (``progression replay``): one patient re-simulated alone from the run's own
``scenario.toml`` gives exactly the rows the run stored, whatever chunk and worker simulated it;
its unit history (``progression.recorder``) agrees with the truth columns of its tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analysis import open_run
from analysis.motor_units import read_replay
from progression.runner import run
from progression.studies.cli import main
from progression.studies.replay import ReplayError, replay
from tests.conftest import small


def _stored(run_dir: Path, table: str, patient: int, arm: str) -> pl.DataFrame:
    frame = open_run(run_dir)[table].filter(
        (pl.col("patient_id") == patient) & (pl.col("arm") == arm)).collect()
    return frame.with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items()
                              if isinstance(t, pl.Categorical))


def _check_identical(run_dir: Path, out: Path, patient: int, arm: str) -> dict:
    """The replay folder's rows equal the stored ones, table by table (our own comparison,
    independent of the replay's)."""
    mine = read_replay(out)
    for table in ("patients", "visits", "muscles", "events"):
        stored = _stored(run_dir, table, patient, arm)
        assert len(stored) > 0 or table == "events", table
        assert_frame_equal(mine[table].select(stored.columns), stored, check_exact=True)
    return mine


@pytest.fixture(scope="module")
def als_run(tmp_path_factory) -> Path:
    """A 3-chunk run on 2 dask workers (3 years, 15 patients)."""
    out = tmp_path_factory.mktemp("replay") / "als"
    scenario = small("als_natural_history", patients=15, time__duration_months=36)
    run(scenario, out, workers=2, chunk_size=5, progress=False)
    return out


def test_replay_equals_the_stored_rows_of_a_multi_chunk_two_worker_run(als_run, tmp_path):
    for patient in (6, 13):  # chunks 1 and 2
        out = tmp_path / f"p{patient}"
        r = replay(als_run, patient, out=out, muscles=[("APB", "left")])
        assert r.identical, r.differences
        assert r.compared == ["patients", "visits", "muscles", "events"]
        mine = _check_identical(als_run, out, patient, "natural_history")
        _check_unit_history(mine)
        assert [p.name for p in r.figures] == ["APB_left.png"]
        assert r.figures[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_unit_history(mine: dict) -> None:
    """units.parquet counts the same living units as the muscles table's truth column, at
    every visit; fibres only grow in living units (adoption) and tracts only lose axons."""
    units = mine["units"]
    assert units.select("muscle", "side", "unit").unique().height == 3470
    count = (units.group_by("month", "muscle", "side")
             .agg(pl.col("alive").sum().alias("alive"), pl.len().alias("units")))
    seen = mine["muscles"].join(count, on=["month", "muscle", "side"], how="left")
    assert seen["alive"].null_count() == 0
    np.testing.assert_allclose(seen["units_alive_fraction"], seen["alive"] / seen["units"])
    tracts = mine["tracts"].sort("region", "side", "month")
    drops = tracts.group_by("region", "side").agg(pl.col("axons_alive").diff().max())
    assert (drops["axons_alive"].fill_null(0) <= 0).all()
    assert (units.filter(pl.col("month") == 0)["fibres"]
            == units.filter(pl.col("month") == 0)["healthy_fibres"]).all()


def test_replay_of_a_treated_arm_of_the_trial(tmp_path):
    out = tmp_path / "trial"
    run(small("trial_als", patients=30), out, workers=1, chunk_size=8, progress=False)
    enrolled = (open_run(out)["patients"]
                .filter(pl.col("enrolled") & (pl.col("arm") == "drug")
                        & (pl.col("patient_id") >= 8))  # not in the first chunk
                .select("patient_id").collect()["patient_id"].to_list())
    assert enrolled, "nobody enrolled in the drug arm: choose a larger cohort"
    patient = enrolled[0]
    r = replay(out, patient, arm="drug", out=tmp_path / "replay", muscles=[])
    assert r.identical, r.differences
    mine = _check_identical(out, tmp_path / "replay", patient, "drug")
    assert "enrolment" in mine["events"]["event"].to_list()
    placebo = replay(out, patient, arm="placebo")
    assert placebo.identical
    assert not placebo.tables["visits"].equals(r.tables["visits"])  # the drug made a difference


def test_a_difference_is_reported_not_hidden(als_run):
    """The comparison can fail: another patient's rows under this patient's id differ."""
    from progression.studies.replay import _compare

    r = replay(als_run, 7)
    other = replay(als_run, 8)
    r.tables = {name: t.set_column(t.schema.get_field_index("patient_id"), "patient_id",
                                   pa_array(len(t), 7)) for name, t in other.tables.items()}
    r.compared, r.differences = [], {}
    _compare(als_run, r)
    assert not r.identical and "visits" in r.differences


def pa_array(n: int, value: int):
    import pyarrow as pa

    return pa.array(np.full(n, value, dtype=np.int64))


def test_replay_refuses_what_it_cannot_replay(als_run, tmp_path):
    with pytest.raises(ReplayError, match="no arm 'drug'"):
        replay(als_run, 1, arm="drug")
    with pytest.raises(ReplayError, match="no patient 15"):
        replay(als_run, 15)
    with pytest.raises(ReplayError, match="not a progression run"):
        replay(tmp_path, 1)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ReplayError, match="notes.txt"):
        replay(als_run, 1, out=tmp_path)


def test_the_replay_command(als_run, tmp_path, capsys):
    out = tmp_path / "replay"
    assert main(["replay", str(als_run), "--patient", "3", "--out", str(out),
                 "--muscles", "FDI"]) == 0
    printed = capsys.readouterr().out
    assert "identical to the run's rows in patients, visits, muscles, events" in printed
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["FDI_left.png",
                                                                   "FDI_right.png"]
    assert main(["replay", str(als_run), "--patient", "3", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["replay", str(als_run), "--patient", "3", "--out", str(out), "--overwrite",
                 "--muscles", "nose"]) == 2
    assert "no muscle 'nose'" in capsys.readouterr().err
    changed = als_run / "scenario.toml"
    text = changed.read_text()
    try:
        changed.write_text(text.replace("seed = ", "seed = 1", 1))
        assert main(["replay", str(als_run), "--patient", "3", "--out", str(tmp_path / "x")]) == 2
        assert "is not the scenario the run was made from" in capsys.readouterr().err
    finally:
        changed.write_text(text)
