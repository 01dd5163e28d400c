"""Parameter sweeps and sensitivity: [sweep] validation, a tiny sweep end to end, common random
numbers (a point equals a plain run with its values), Ishigami indices recovered, outputs written.

Real-engine sweeps here are tiny (a few patients, 36 months) and run in process.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from analysis.outcomes import OUTCOMES, open_sweep, summarize_sweep
from analysis.sensitivity import sensitivity
from progression import storage
from progression.manifest import Manifest
from progression.runner import run
from progression.scenario import ScenarioError, Sweep, SweepParameter, load_scenario
from progression.studies import cli
from progression.studies import sweep as sw

ROOT = Path(__file__).resolve().parents[1]
ALS = ROOT / "scenarios" / "als_natural_history.toml"
SHORT = {"time.duration_months": 36}
TABLES = ("patients", "visits", "muscles", "events")


def scenario_with(tmp: Path, sweep: str, name: str = "s.toml") -> Path:
    """The ALS scenario plus a [sweep] section, written to ``tmp/name``."""
    path = tmp / name
    path.write_text(ALS.read_text() + "\n" + sweep)
    return path


GRID = """
[sweep]
method = "grid"
[sweep.parameters]
"disease.lmn.speed.median" = { values = [0.05, 0.1] }
"""


def cli_error(argv: list[str], capsys) -> str:
    """Run the CLI expecting exit code 2; return its one-line error."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("progression: error: ") and "\n" not in err, err
    return err


# -------------------------------------------------------------------------------- bad input


def test_unknown_key_path_names_the_closest_valid_ones(tmp_path, capsys):
    path = scenario_with(tmp_path, GRID.replace("lmn.speed.median", "lmn.sped.median"))
    out = tmp_path / "out"
    err = cli_error(["sweep", str(path), "--out", str(out)], capsys)
    assert str(path) in err and "unknown key path 'disease.lmn.sped.median'" in err
    assert "closest valid: disease.lmn.speed.median" in err
    assert not out.exists()
    path = scenario_with(tmp_path, GRID.replace("disease.lmn.speed.median",
                                                "reinervation.capacity.mean"))
    with pytest.raises(ScenarioError, match=r"closest valid: reinnervation\.capacity\.mean"):
        sw.plan_sweep(path)


def test_value_outside_the_valid_range_names_value_and_range(tmp_path, capsys):
    sweep = """
[sweep]
method = "sobol"
samples = 4
[sweep.parameters]
"disease.lmn.speed.median" = { low = 0.02, high = 0.08 }
"reinnervation.atrophy_window_months" = { low = 6, high = 300 }
"""
    path = scenario_with(tmp_path, sweep)
    out = tmp_path / "out"
    err = cli_error(["sweep", str(path), "--out", str(out)], capsys)
    assert 'sweep.parameters."reinnervation.atrophy_window_months".high' in err
    assert "300 is outside the valid range" in err and "[1, 240]" in err
    assert not out.exists()
    # A grid value, and a distribution parameter whose range is checked by its distribution.
    bad = GRID.replace("[0.05, 0.1]", "[0.05, -0.1]")
    with pytest.raises(ScenarioError, match=r"values: -0.1 is outside .*median > 0"):
        sw.plan_sweep(scenario_with(tmp_path, bad))


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ("", "sweep: expected a [sweep] section"),
        (GRID.replace("values = [0.05, 0.1]", "low = 0.05, high = 0.1"), "values = [...]"),
        (GRID.replace('"grid"', '"sobol"'), "{ low = ..., high = ... }"),
        (GRID.replace('"grid"', '"latin"').replace("values = [0.05, 0.1]", "low = 1, high = 1"),
         "expected a value > low"),
        (GRID.replace('"grid"', '"sobol"\nsamples = 6').replace(
            "values = [0.05, 0.1]", "low = 0.01, high = 0.1"), "a power of 2"),
        (GRID.replace("disease.lmn.speed.median", "cohort.patients"),
         "expected a physiological parameter"),
        (GRID.replace('"grid"', '"anneal"'), "sweep.method: expected one of"),
        (GRID.replace("disease.lmn.speed.median", "disease.umn.axons").replace(
            "[0.05, 0.1]", "[50, 75.5]"), "expected an integer"),
    ],
    ids=["no-section", "grid-range", "sobol-values", "empty-range", "sobol-not-power-of-2",
         "cohort-size", "method", "integer-field"],
)
def test_sweep_section_errors(tmp_path, sweep, expected):
    with pytest.raises(ScenarioError) as e:
        sw.plan_sweep(scenario_with(tmp_path, sweep))
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_output_larger_than_free_space_is_refused(tmp_path, capsys, monkeypatch):
    text = GRID.replace("[0.05, 0.1]", "[0.05, 0.1, 0.15]")
    path = scenario_with(tmp_path, text)
    path.write_text(path.read_text().replace("duration_months = 120", "duration_months = 24"))
    monkeypatch.setattr(sw, "free_bytes", lambda p: 10_000)
    out = tmp_path / "out"
    err = cli_error(["sweep", str(path), "--out", str(out), "--patients", "5"], capsys)
    assert "estimated at" in err and "3 points x 5 patients" in err and "--yes" in err
    assert not out.exists()


# ------------------------------------------------------------------------- a tiny sweep


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path, sw.SweepPlan]:
    """A 2-point grid sweep of 4 patients over 36 months, run in process."""
    tmp = tmp_path_factory.mktemp("sweep")
    path = scenario_with(tmp, GRID)
    plan = sw.plan_sweep(path, patients=4, overrides=SHORT)
    sw.run_sweep(plan, tmp / "out", workers=1, chunk_size=3, progress=False)
    return path, tmp / "out", plan


def test_tiny_sweep_writes_points_tables_and_summary(tiny):
    _, out, plan = tiny
    assert [p.values for p in plan.points] == [
        {"disease.lmn.speed.median": 0.05}, {"disease.lmn.speed.median": 0.1}
    ]
    for name in TABLES:
        for k in (0, 1):
            parts = list((out / name / f"point={k}" / "arm=natural_history").glob("chunk=*"))
            assert len(parts) == 2 and all((p / storage.PART).is_file() for p in parts)
    manifest = Manifest.load(out)
    assert manifest.is_complete() and manifest.patients == 8
    assert manifest.prefixes == ["point=0", "point=0", "point=1", "point=1"]
    points = pl.read_parquet(out / sw.POINTS)
    assert points.columns == ["point", "sample", "replicate", "seed", "disease.lmn.speed.median"]
    assert points["disease.lmn.speed.median"].to_list() == [0.05, 0.1]
    design = json.loads(pq.read_schema(out / sw.POINTS).metadata[sw.META_SWEEP.encode()])
    assert design["method"] == "grid" and design["parameters"][0]["values"] == [0.05, 0.1]
    whole = open_sweep(out)["patients"].group_by("point").len().sort("point").collect()
    assert whole.rows() == [(0, 4), (1, 4)]
    summary = pl.read_parquet(out / sw.SUMMARY)
    assert summary.columns == ["point", *OUTCOMES] and summary["point"].to_list() == [0, 1]
    assert summary["symptomatic"].min() > 0
    # Twice the LMN speed: faster ALSFRS-R decline, as the physiology says.
    slope = summary["alsfrs_slope_per_month"].to_list()
    assert slope[1] < slope[0] < 0
    # Extra metrics (e.g. calibration estimators) become extra summary columns.
    extra = summarize_sweep(out, [0, 1], lambda run: {
        "visits_n": float(run["visits"].select(pl.len()).collect().item())})
    assert extra.columns == ["point", *OUTCOMES, "visits_n"] and extra["visits_n"].min() > 0


def test_resuming_a_complete_sweep_runs_nothing_and_keeps_the_summary(tiny):
    _, out, plan = tiny
    before = pl.read_parquet(out / sw.SUMMARY)
    result = sw.run_sweep(plan, out, workers=1, resume=True, progress=False)
    assert result.run.chunks_run == 0
    # Equal up to the order of float sums in polars' parallel aggregations.
    assert_frame_equal(pl.read_parquet(out / sw.SUMMARY), before, rel_tol=1e-9)


def _table(folder: Path, point: bool) -> pl.DataFrame:
    """A table's rows, categories as strings, sorted by every column (chunk ignored)."""
    hive = {"point": pl.Int64, "arm": pl.String, "chunk": pl.Int64} if point else {
        "arm": pl.String, "chunk": pl.Int64}
    df = pl.read_parquet(folder / "**" / "*.parquet", hive_partitioning=True, hive_schema=hive)
    df = df.drop([c for c in ("point", "chunk") if c in df.columns])
    df = df.with_columns(pl.col(c).cast(pl.String) for c, t in df.schema.items()
                         if t == pl.Categorical or isinstance(t, pl.Enum))
    return df.sort(df.columns, nulls_last=True)


def test_a_point_equals_a_plain_run_with_its_values(tiny, tmp_path):
    path, out, _ = tiny
    scenario = load_scenario(path, patients=4, overrides={**SHORT,
                                                          "disease.lmn.speed.median": 0.1})
    run(scenario, tmp_path / "plain", workers=1, progress=False)
    for name in TABLES:
        a = _table(out / name / "point=1", point=True)
        b = _table(tmp_path / "plain" / name, point=False)
        assert a.height > 0 and a.equals(b), name
    meta = pq.read_schema(next((out / "patients" / "point=1").rglob("*.parquet"))).metadata
    assert meta[storage.META_HASH.encode()].decode() == scenario.hash


def test_the_same_patient_draws_the_same_numbers_at_every_point(tiny):
    _, out, _ = tiny
    a, b = (_table(out / "patients" / f"point={k}", point=True).sort("patient_id") for k in (0, 1))
    assert a["patient_id"].to_list() == b["patient_id"].to_list() == [0, 1, 2, 3]
    for column in ("symptom_threshold", "respiratory_threshold", "age_at_degeneration_years",
                   "reinnervation_capacity", "umn_speed", "onset_region"):
        assert a[column].equals(b[column]), column
    # Same standard normal per patient: doubling the median doubles every patient's speed.
    np.testing.assert_allclose(b["lmn_speed"].to_numpy(), 2 * a["lmn_speed"].to_numpy(),
                               rtol=1e-12)


def test_plan_points_runs_explicit_rows_under_each_variant(tmp_path):
    """Explicit values (an optimiser's): point = row x variants + variant, one cohort seed, each
    point's scenario that of load_scenario with the same overrides."""
    rows = [{"disease.lmn.speed.median": 0.05, "disease.umn.axons": 60.0},
            {"disease.lmn.speed.median": 0.1, "disease.umn.axons": 70.0}]
    month0 = {"visits.start": "degeneration"}
    plan = sw.plan_points(ALS, rows, variants=[{}, month0], patients=3, seed=7, overrides=SHORT)
    assert [(p.point, p.sample, p.seed, p.overrides) for p in plan.points] == [
        (0, 0, 7, {}), (1, 0, 7, month0), (2, 1, 7, {}), (3, 1, 7, month0)]
    assert plan.points[3].values == {"disease.lmn.speed.median": 0.1, "disease.umn.axons": 70}
    assert isinstance(plan.points[3].values["disease.umn.axons"], int)
    plain = load_scenario(ALS, patients=3, seed=7, overrides={
        **SHORT, "disease.lmn.speed.median": 0.1, "disease.umn.axons": 70, **month0})
    assert plan.scenarios[3].hash == plain.hash and plan.spec.method == sw.EXPLICIT
    assert sw.plan_points(ALS, rows, patients=3, seed=7, overrides=SHORT).hash != plan.hash
    sw.write_points(tmp_path, plan.spec, plan.points, plan.integers)
    pl.DataFrame({"point": [0, 1, 2, 3], "y": [1.0, 2.0, 3.0, 4.0]}).write_parquet(
        tmp_path / sw.SUMMARY)
    assert pl.read_parquet(tmp_path / sw.POINTS)["visits.start"].to_list() == [
        None, "degeneration"] * 2
    from analysis.sensitivity import SensitivityError

    with pytest.raises(SensitivityError, match="a points sweep has no sensitivity design"):
        sensitivity(tmp_path)


@pytest.mark.parametrize(
    ("rows", "variants", "expected"),
    [
        ([{"disease.lmn.sped.median": 0.1}], [{}], "closest valid: disease.lmn.speed.median"),
        ([{"disease.umn.axons": 60.5}], [{}], "expected an integer"),
        ([{"disease.lmn.speed.median": 0.1}, {"disease.umn.axons": 60}], [{}],
         "the same key paths"),
        ([{"disease.lmn.speed.median": 0.1}], [{"disease.lmn.speed.median": 0.2}],
         "variants set the parameter(s) disease.lmn.speed.median"),
        ([{"disease.lmn.speed.median": -0.1}], [{}], "sweep point 0"),
    ],
    ids=["unknown", "integer", "rows-differ", "variant-clash", "invalid"],
)
def test_plan_points_errors(rows, variants, expected):
    with pytest.raises(ScenarioError) as e:
        sw.plan_points(ALS, rows, variants=variants)
    assert expected in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------- sensitivity

#: Ishigami (a = 7, b = 0.1) on [-pi, pi]^3: analytic first-order and total Sobol indices.
ISHIGAMI_S1 = (0.3139, 0.4424, 0.0)
ISHIGAMI_ST = (0.5576, 0.4424, 0.2437)


def ishigami_sweep(folder: Path, samples: int = 1024, replicates: int = 1) -> Path:
    """A sweep folder whose summary is the Ishigami function at the Sobol design's points.

    With replicates, replicate r adds ``5 * (-1) ** r`` (noise that the replicate mean cancels).
    """
    spec = Sweep(
        parameters={f"x{i}": SweepParameter(low=-math.pi, high=math.pi) for i in (1, 2, 3)},
        method="sobol", samples=samples, seed=1, replicates=replicates,
    )
    _, points = sw.design_points(spec, seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    sw.write_points(folder, spec, points)
    table = pl.read_parquet(folder / sw.POINTS)
    x = table.select("x1", "x2", "x3").to_numpy()
    y = np.sin(x[:, 0]) + 7 * np.sin(x[:, 1]) ** 2 + 0.1 * x[:, 2] ** 4 * np.sin(x[:, 0])
    y = y + 5.0 * (-1.0) ** table["replicate"].to_numpy()
    pl.DataFrame({"point": table["point"], "ishigami": y}).write_parquet(folder / sw.SUMMARY)
    return folder


def test_design_points_replicate_each_design_row_with_consecutive_seeds():
    spec = Sweep(parameters={"a": SweepParameter(low=0, high=1),
                             "b": SweepParameter(low=10, high=20)},
                 method="latin", samples=5, replicates=3, seed=4)
    x, points = sw.design_points(spec, seed=100, integers=["b"])
    assert x.shape == (5, 2) and len(points) == 15
    assert [p.point for p in points] == list(range(15))
    assert [(p.sample, p.replicate, p.seed) for p in points[:4]] == [
        (0, 0, 100), (0, 1, 101), (0, 2, 102), (1, 0, 100)]
    assert all(isinstance(p.values["b"], int) and 10 <= p.values["b"] <= 20 for p in points)
    # Latin hypercube: one value of "a" in each fifth of its range.
    assert sorted(np.floor(x[:, 0] * 5).astype(int).tolist()) == [0, 1, 2, 3, 4]
    again = sw.design_points(spec, seed=100, integers=["b"])[0]
    np.testing.assert_array_equal(x, again)


def test_ishigami_indices_are_recovered_within_their_confidence_intervals(tmp_path):
    folder = ishigami_sweep(tmp_path / "ishigami", replicates=2)
    assert pl.read_parquet(folder / sw.POINTS).height == 1024 * (3 + 2) * 2
    t = sensitivity(folder).table.sort("parameter")
    assert t["parameter"].to_list() == ["x1", "x2", "x3"] and set(t["method"]) == {"sobol"}
    for row, s1, st in zip(t.iter_rows(named=True), ISHIGAMI_S1, ISHIGAMI_ST, strict=True):
        assert abs(row["s1"] - s1) <= row["s1_conf"], row
        assert abs(row["st"] - st) <= row["st_conf"], row
        assert row["s1_conf"] < 0.1 and row["st_conf"] < 0.1, row


def test_sensitivity_command_writes_table_and_charts(tmp_path, capsys):
    folder = ishigami_sweep(tmp_path / "ishigami", samples=64)
    out = tmp_path / "sens"
    assert cli.main(["sensitivity", str(folder), "--out", str(out)]) == 0
    table = pl.read_parquet(out / "sensitivity.parquet")
    assert table.columns == ["outcome", "parameter", "method", "s1", "s1_conf", "st", "st_conf",
                             "mu_star", "mu_star_conf", "sigma"]
    assert table.height == 3
    page = (out / "sensitivity.html").read_text()
    assert page.count("<img") == 1 and "data:image/png;base64," in page
    err = cli_error(["sensitivity", str(folder), "--out", str(out)], capsys)
    assert "--overwrite" in err
    missing = cli_error(["sensitivity", str(tmp_path / "none"), "--out", str(out)], capsys)
    assert "no points.parquet" in missing


def test_morris_sweep_end_to_end(tmp_path, capsys):
    sweep = """
[sweep]
method = "morris"
samples = 2
levels = 4
seed = 3
[sweep.parameters]
"disease.lmn.speed.median" = { low = 0.03, high = 0.12 }
"reinnervation.capacity.mean" = { low = 3, high = 9 }
"""
    plan = sw.plan_sweep(scenario_with(tmp_path, sweep), patients=3, overrides=SHORT)
    assert len(plan.points) == 2 * (2 + 1)
    sw.run_sweep(plan, tmp_path / "out", workers=1, progress=False)
    assert cli.main(["sensitivity", str(tmp_path / "out"), "--out", str(tmp_path / "sens")]) == 0
    table = pl.read_parquet(tmp_path / "sens" / "sensitivity.parquet")
    assert set(table["method"]) == {"morris"} and table["s1"].is_null().all()
    assert table["mu_star"].is_not_null().all() and (table["mu_star"] >= 0).all()
    outcomes = table["outcome"].unique().to_list()
    assert "alsfrs_slope_per_month" in outcomes
    page = (tmp_path / "sens" / "sensitivity.html").read_text()
    assert page.count("<img") == len(outcomes)
    # The LMN speed moves the ALSFRS-R slope more than reinnervation capacity does.
    slope = table.filter(pl.col("outcome") == "alsfrs_slope_per_month").sort("parameter")
    assert slope["mu_star"][0] > slope["mu_star"][1]


def test_verify_and_open_a_sweep_that_lost_a_chunk(tiny, tmp_path, capsys):
    """A sweep folder is checked like a run; its repair command is the sweep's own."""
    import shutil

    from analysis.io import RunReadError, open_run

    path, out, _ = tiny
    copy = tmp_path / "sweep"
    shutil.copytree(out, copy)
    assert cli.main(["verify", str(copy)]) == 0
    m = Manifest.load(copy)
    m.forget(m.completed[-1]["chunk"])
    m.save(copy)
    capsys.readouterr()
    assert cli.main(["verify", str(copy)]) == 1
    assert f"progression sweep {path} --out {copy} --resume" in capsys.readouterr().out
    with pytest.raises(RunReadError, match=f"progression sweep {path}"):
        open_run(copy)
