"""Calibration (issue 7): published targets computed from the tables, validate-model, fitting.

The target checks run small cohorts of the shipped scenarios in process, so their tolerance is the
estimator's own 95% confidence interval: a target passes here when that interval reaches its
published range. The full table, from cohorts of thousands, is in docs/model/validation.md; a
failure here means the calibration moved by more than its Monte Carlo error.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis import estimators as E
from analysis import targets as T
from analysis.intervals import km_median
from analysis.survival import kaplan_meier_estimate, km_medians
from progression.exam import alsfrs
from progression.model import simulate_chunk
from progression.studies import calibration as C
from progression.studies import cli
from tests.conftest import ROOT, SCENARIOS, small

SHARED_TARGETS = ROOT.parent / "shared" / "calibration" / "targets.toml"


def _tables(name: str, patients: int, **overrides) -> dict[str, pl.LazyFrame]:
    tables = simulate_chunk(small(name, patients, **overrides), np.arange(patients)).tables
    return {k: pl.from_arrow(v).lazy() for k, v in tables.items()}


@cache
def _runs() -> dict[str, dict[str, pl.LazyFrame]]:
    """Small in-process cohorts of the runs the targets read (common to the tests below)."""
    return {
        "als_natural_history": _tables("als_natural_history", 240),
        "als_natural_history@month0": _tables(
            "als_natural_history", 80, **{"visits.start": "degeneration",
                                          "time.duration_months": 72}
        ),
        "pma_natural_history": _tables("pma_natural_history", 120),
        "pls_natural_history": _tables("pls_natural_history", 100),
        "mnd_population": _tables("mnd_population", 400, **{"time.duration_months": 120}),
    }


def _targets() -> list[T.Target]:
    return T.load_targets(C.DEFAULT_TARGETS)


def test_the_project_targets_keep_every_shared_target():
    """``validation/targets.toml`` is the project's; the steering group's shared copy (beside
    the repository, where there is one) must not hold a target it lacks or gives otherwise."""
    ours = {t.id: t for t in _targets()}
    assert C.DEFAULT_TARGETS.is_relative_to(ROOT) and ours
    if not SHARED_TARGETS.is_file():
        return
    for t in T.load_targets(SHARED_TARGETS):
        assert t.id in ours, t.id
        o = ours[t.id]
        assert (o.value, o.range, o.kind, o.scenario) == (t.value, t.range, t.kind, t.scenario)


# ------------------------------------------------------------------------------ statistics


def test_km_median_agrees_with_the_analysis_kaplan_meier():
    rng = np.random.default_rng(3)
    for n in (5, 40, 300):
        t = np.round(rng.exponential(30, n), 1)  # ties included
        d = rng.uniform(size=n) < 0.7
        km = km_medians(kaplan_meier_estimate(pl.DataFrame({"months": t, "died": d})))
        expected = km["median"][0]
        got = km_median(t, d)
        assert (expected is None and np.isnan(got)) or got == pytest.approx(expected)


def test_every_published_target_has_an_estimator_and_its_runs():
    targets = _targets()
    assert targets, "no targets read"
    for t in targets:
        assert t.id in E.ESTIMATORS, t.id
        for run in E.NEEDS[t.id]:
            scenario, _ = C.run_spec(run)
            assert (SCENARIOS / f"{scenario}.toml").is_file(), run
    assert {t.kind for t in targets} <= {"emergent", "input"}


def test_vital_capacity_mapping_keeps_braun_anchor():
    # VC insensitive to mild weakness, about 51% at 30% strength (Braun 1983: <55% at <30%).
    assert alsfrs.vital_capacity(np.array([1.0]))[0] == 1.0
    assert alsfrs.vital_capacity(np.array([0.3]))[0] == pytest.approx(0.51)
    assert alsfrs.vital_capacity(np.array([0.8]))[0] > 0.95
    assert alsfrs.strength_for_vc(0.51) == pytest.approx(0.3)


# --------------------------------------------------------------------------- the targets


def _overlaps(result: T.Result) -> bool:
    """The estimate's 95% interval reaches the range of every component."""
    e = result.estimate
    for v, lo, hi, (r_lo, r_hi) in zip(e.value, e.lower, e.upper, result.ranges, strict=True):
        lo = v if lo is None else lo
        hi = v if hi is None else hi
        if hi < r_lo or lo > r_hi:
            return False
    return all(e.checks.values())


#: Emergent targets known not to hold yet (open work of issue 17; docs/model/validation.md): at
#: the first visit the simulated onset limb's MUNE is higher than published, breathing becomes
#: symptomatic earlier in the spread than published (arm and bulbar onsets), and leg-onset
#: patients outlive arm-onset ones by about a year where the published split is even; CMAP at
#: presentation passes at 10,000 patients on its range's edge. They are judged and reported;
#: this test only asks that no *other* target miss.
OPEN_TARGETS = {
    "leg_onset_survival_difference",  # +12.7 (11.5-14.1) months at 10,000 against -6 to +4
    "cmap_reduced_at_presentation",  # 0.70 (0.69-0.71) at 10,000 against 0.68-0.82
    "mune_decline_als",  # passes at 10,000 (3.05, 3.00-3.11); kept: small cohorts scatter it
    "mune_first_visit_fraction",  # 0.37 (0.36-0.38) at 10,000 against 0.19-0.28
    "preserved_regions_at_respiratory_onset",  # arms 0.90, bulbar 0.47 against 0.37-0.71, 0.05-0.30
}


def test_targets_land_in_their_ranges_within_monte_carlo_error():
    """Small cohorts of the shipped scenarios: each target's 95% CI reaches its range (the
    :data:`OPEN_TARGETS` excepted)."""
    results = T.evaluate(_targets(), _runs())
    judged = [r for r in results if r.estimate is not None and r.ranges is not None
              and r.status != "input"]
    # Every emergent target with a published range is judged (inputs are reported, not judged).
    emergent = {t.id for t in _targets() if t.kind == "emergent"}
    assert emergent and emergent == {r.target.id for r in judged}
    missed = [(r.target.id, r.estimate.value, r.estimate.lower, r.estimate.upper, r.ranges)
              for r in judged if not _overlaps(r) and r.target.id not in OPEN_TARGETS]
    assert not missed, missed
    # Healthy values are near-exact at any size: their point estimates are in range.
    for r in judged:
        if r.target.scenario == "any":
            assert r.status == "pass", (r.target.id, r.estimate)


def test_spread_targets_count_the_published_cohorts_onset_types_only():
    """The interval to a second region (Fujimura-Kiyono 2011: upper-limb, lower-limb, bulbar
    or combined onsets) leaves out patients whose first symptoms were thoracic, and keeps
    every other patient who reached two of bulbar, arms and legs."""
    from analysis.io import onset_sites
    from analysis.spread import region_onsets

    run = _runs()["als_natural_history"]
    sites = onset_sites(run).collect()
    trunk = set(sites.filter(pl.col("onset_site") == "trunk")["patient_id"])
    assert trunk, "the cohort has thoracic onsets (onset_region_mix: 6%)"
    ons = region_onsets(run, by=None).filter(pl.col("region").is_in(list(E.SPREAD_REGIONS)))
    two = set(ons.group_by("patient_id").len().filter(pl.col("len") >= 2)["patient_id"])
    got = set(E._second_region(run)["patient_id"])
    assert got == two - trunk and two & trunk


def test_estimates_do_not_depend_on_the_order_of_the_rows():
    """Every target estimated from the same tables with their rows shuffled gives the same
    value and interval (bootstrap intervals draw patients, not row positions): a run's figures
    do not change with its chunking or the order of its files."""
    runs = _runs()

    def shuffled(tables: dict[str, pl.LazyFrame], seed: int) -> dict[str, pl.LazyFrame]:
        return {k: v.collect().sample(fraction=1.0, shuffle=True, seed=seed).lazy()
                for k, v in tables.items()}

    mixed = {name: shuffled(tables, i) for i, (name, tables) in enumerate(runs.items())}
    for a, b in zip(T.evaluate(_targets(), runs), T.evaluate(_targets(), mixed), strict=True):
        ea, eb = a.estimate, b.estimate
        assert (ea is None) == (eb is None), a.target.id
        if ea is not None:
            got = np.array([eb.value, eb.lower, eb.upper], dtype=float)
            want = np.array([ea.value, ea.lower, ea.upper], dtype=float)
            np.testing.assert_allclose(got, want, rtol=1e-9, err_msg=a.target.id)


def test_sweep_outcomes_report_the_calibration_targets_slopes():
    """One ALSFRS-R and SVC slope (first 12 months of follow-up): a sweep's outcome is the
    validation target's estimate."""
    from analysis.outcomes import outcomes

    runs = {"als_natural_history": _runs()["als_natural_history"]}
    out = outcomes(runs["als_natural_history"])
    for outcome, estimator in (("alsfrs_slope_per_month", E.als_alsfrs_slope),
                               ("svc_slope_per_month", E.als_svc_slope)):
        assert out[outcome] == pytest.approx(estimator(runs).value[0], rel=1e-12), outcome


def test_trial_and_population_scenarios_keep_the_als_physiology():
    from progression.scenario import load_scenario

    als = load_scenario(SCENARIOS / "als_natural_history.toml")
    for name in ("trial_als", "mnd_population", "pma_natural_history", "sensitivity_als"):
        other = load_scenario(SCENARIOS / f"{name}.toml")
        for section in ("body", "reinnervation", "respiration", "excitability", "symptoms",
                        "mortality", "exam", "visits"):
            assert getattr(other, section) == getattr(als, section), (name, section)
        assert other.disease.lmn == als.disease.lmn, name
    for name in ("trial_als", "sensitivity_als"):
        assert load_scenario(SCENARIOS / f"{name}.toml").disease == als.disease, name


# ------------------------------------------------------------------------- validate-model


def _small_targets(tmp_path: Path) -> Path:
    """A targets file of three targets, one per kind of run (or the shared file's copy)."""
    text = """
[[target]]
id = "als_survival_median_months"
scenario = "als_natural_history"
quantity = "median survival from symptom onset, ALS (months)"
value = 32
range = [24, 40]

[[target]]
id = "cmct_normal_upper_ms"
scenario = "any"
quantity = "CMCT to APB in healthy adults (ms)"
value = 7.5
range = [6.0, 9.0]

[[target]]
id = "onset_region_mix"
kind = "input"
scenario = "als_natural_history"
quantity = "onset region shares: limb, bulbar, trunk/respiratory"
value = [0.72, 0.22, 0.06]
"""
    path = tmp_path / "targets.toml"
    path.write_text(text)
    return path


def test_validate_model_runs_and_writes_markdown(tmp_path, capsys):
    targets = _small_targets(tmp_path)
    out = tmp_path / "v"
    rc = cli.main(["validate-model", "--targets", str(targets), "--patients", "30",
                   "--out", str(out), "--workers", "1"])
    assert rc in (0, 1)  # 1 when a target fails, as it may with 30 patients
    md = (out / "validation.md").read_text()
    for tid in ("als_survival_median_months", "cmct_normal_upper_ms", "onset_region_mix"):
        assert f"`{tid}`" in md
    assert "| input |" in md and (out / "runs" / "als_natural_history" / "patients").is_dir()
    printed = capsys.readouterr().out
    assert "cmct_normal_upper_ms" in printed and "status" in printed


def test_validate_model_names_a_missing_targets_file(tmp_path, capsys):
    rc = cli.main(["validate-model", "--targets", str(tmp_path / "none.toml"),
                   "--out", str(tmp_path / "v")])
    err = capsys.readouterr().err
    assert rc == 2 and "--targets" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------- fitting


#: A few muscles keep the fits' simulations fast.
FEW_MUSCLES = {"body.muscles": ["tongue", "APB", "diaphragm", "intercostals", "TA"]}


@pytest.mark.parametrize("engine", [{"engine": "inline"}, {"workers": 1}],
                         ids=["inline", "sweep"])
def test_fit_recovers_a_known_lmn_speed_with_common_random_numbers(engine):
    """Targets computed on a run with a known speed; the fit, started elsewhere, finds it (in
    process, and through one sweep per batch of evaluations on the runner)."""
    scenario = SCENARIOS / "als_natural_history.toml"
    fixed = {**FEW_MUSCLES, "time.duration_months": 84}
    truth = 0.075
    runs = {"als_natural_history": _tables("als_natural_history", 60, **fixed,
                                           **{"disease.lmn.speed.median": truth})}
    observed = E.als_survival_median_months(runs).value[0]
    result = C.fit(
        scenario,
        {"disease.lmn.speed.median": (0.04, 0.14)},
        [("als_survival_median_months", observed, 1.0)],
        patients=60,
        overrides=fixed,
        max_evaluations=30,
        **engine,
    )
    assert result.values[0] == pytest.approx(truth, rel=0.05), result.summary()
    assert np.isfinite(result.se[0]) and 0 < result.se[0] < 0.02
    lo, hi = result.ci()[0]
    assert lo <= truth <= hi
    assert "disease.lmn.speed.median" in result.summary()


def _visits_ratio(runs) -> float:
    """Visits of the main run over visits of its month-0 variant (a statistic of both)."""
    def n(name: str) -> int:
        return runs[name]["visits"].select(pl.len()).collect().item()

    return n("als_natural_history") / n("als_natural_history@month0")


def test_fit_through_sweeps_equals_the_inline_fit_and_keeps_every_batch(tmp_path):
    """Two parameters, targets on the main run, its month-0 variant and both: the sweep engine
    (two dask workers, several chunks per point) simulates exactly what the inline one does, and
    writes each batch as a sweep folder, one point per parameter vector and run variant."""
    from analysis.outcomes import point_frames
    from progression.scenario import load_scenario
    from progression.studies import sweep as sw

    scenario = SCENARIOS / "als_natural_history.toml"
    fixed = {**FEW_MUSCLES, "time.duration_months": 36}
    params = {"disease.lmn.speed.median": (0.04, 0.14), "reinnervation.capacity.mean": (3.0, 9.0)}
    targets = [("als_alsfrs_slope", -1.0, 0.1), ("munix_healthy", 100.0, 10.0),
               C.FitTarget(_visits_ratio, 0.5, 0.1,
                           runs=("als_natural_history", "als_natural_history@month0"))]
    common = dict(patients=12, overrides=fixed, max_evaluations=10)
    inline = C.fit(scenario, params, targets, engine="inline", **common)
    out = tmp_path / "fit"
    swept = C.fit(scenario, params, targets, workers=2, out=out, **common)
    for name in ("values", "se", "simulated"):
        np.testing.assert_array_equal(getattr(swept, name), getattr(inline, name), name)
    assert swept.evaluations == inline.evaluations == 20 and swept.cost == inline.cost

    # The first batch: the start and its Jacobian's 4 neighbours, each plain and from month 0.
    first = out / "eval-000"
    points = pl.read_parquet(first / sw.POINTS)
    assert points["point"].to_list() == list(range(10))
    assert points["sample"].to_list() == [k // 2 for k in range(10)]
    assert points["visits.start"].to_list() == [None, "degeneration"] * 5
    assert set(points["seed"]) == {load_scenario(scenario).cohort.seed}
    assert points.row(0, named=True)["disease.lmn.speed.median"] == 0.09
    for table in ("patients", "visits", "muscles", "events"):
        assert sorted(p.name for p in (first / table).iterdir()) == [
            f"point={k}" for k in range(10)]
    assert pl.read_parquet(first / sw.SUMMARY)["point"].to_list() == list(range(10))
    assert sorted(p.name for p in out.iterdir()) == [f"eval-{b:03d}" for b in range(3)]
    # Point 0 is the start: the same target value as simulating it in this process.
    start = {"disease.lmn.speed.median": 0.09, "reinnervation.capacity.mean": 6.0}
    here = simulate_chunk(load_scenario(scenario, patients=12, overrides={**fixed, **start}),
                          np.arange(12)).tables
    expected = E.als_alsfrs_slope(
        {"als_natural_history": {k: pl.from_arrow(v).lazy() for k, v in here.items()}})
    got = E.als_alsfrs_slope({"als_natural_history": point_frames(first, 0)})
    assert expected.value[0] is not None and got.value == expected.value

    with pytest.raises(ValueError, match="not empty"):
        C.fit(scenario, params, targets, out=out, **common)
    with pytest.raises(ValueError, match="engine='sweep'"):
        C.fit(scenario, params, targets, engine="inline", workers=2, **common)


def _result(lower: float, upper: float, value: float = 10.0) -> T.Result:
    target = T.Target(id="x", scenario="any", quantity="q", value=(10.0,), range=(8.0, 12.0))
    return T.judge(target, E.Estimate((value,), (lower,), (upper,), n=100))


def test_a_target_passes_only_with_its_interval_inside_the_range():
    assert _result(8.5, 11.5).status == "pass"
    assert _result(7.9, 11.5).status == "fail"  # touches the range, not inside it
    assert _result(11.0, 12.5).status == "fail"
    assert _result(12.5, 13.0, value=12.7).status == "fail"


def test_several_seeds_pass_only_when_every_seed_passes():
    a, b = [_result(8.5, 11.5)], [_result(7.0, 9.5, value=8.2)]
    both = T.combine([a, b])
    assert both[0].status == "fail" and both[0].seeds == ("pass", "fail")
    assert T.rows(both)[0]["status"] == "fail (1/2 seeds)"
    assert T.combine([a, a])[0].status == "pass" and T.combine([a])[0].seeds == ()
