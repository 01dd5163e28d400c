"""Power by simulated trials (analysis.endpoints, .trial_tests, .trials, .sample_size,
``progression power``).

One small trial run (300 patients, both arms) is made once for the module; everything else draws
replicate trials from it or from data simulated exactly from a random-slope model.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
from scipy import stats

from analysis.endpoints import ENDPOINTS, TrialOptions, load_trial, trial_values
from analysis.power import power_random_slope
from analysis.sample_size import sample_size
from analysis.trial_tests import analyse, change_test, rank_test, survival_test
from analysis.trials import (
    closed_form_n,
    draw_indices,
    power_command,
    random_slope_trial,
    simulate_power,
)
from progression.runner import run
from progression.scenario import load_scenario
from progression.studies.cli import main
from tests.conftest import SCENARIOS

ALPHA = 0.05


@pytest.fixture(scope="module")
def trial_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trial") / "run"
    scenario = load_scenario(SCENARIOS / "trial_als.toml", patients=300)
    run(scenario, out, workers=1, chunk_size=150, progress=False)
    return out


@pytest.fixture(scope="module")
def trial(trial_run):
    return load_trial(trial_run)


def binomial_99(p: float, n: int) -> tuple[int, int]:
    """Central 99% interval of a Binomial(n, p) count."""
    return int(stats.binom.ppf(0.005, n, p)), int(stats.binom.ppf(0.995, n, p))


# ---------------------------------------------------------------------------------------------
# Type I error


def test_every_endpoint_keeps_its_type_I_error_and_a_slope_without_random_slope_does_not(trial):
    reps = 2000
    lo, hi = binomial_99(ALPHA, reps)
    null = simulate_power(trial, [50], reps, ALPHA, sided=2, seed=11, comparisons=["null"])
    assert set(null["endpoint"]) == set(ENDPOINTS)
    outside = null.filter((pl.col("rejections") < lo) | (pl.col("rejections") > hi))
    assert outside.height == 0, outside.select("endpoint", "rejections", "power")
    # The same null trials analysed without a random slope: the between-patient spread of
    # slopes is taken for precision and the check above catches it. A random-intercept model
    # (the classic mistake) rejects several times too often; pooled OLS on all visits (whose
    # residual still holds the intercept spread) too often.
    for method, factor in (("intercept", 3), ("naive", 1.5)):
        wrong = simulate_power(
            trial, [50], reps, ALPHA, sided=2, seed=11, comparisons=["null"], slope_method=method
        ).filter(pl.col("endpoint") == "alsfrs_slope")
        assert wrong["rejections"][0] > hi, method
        assert wrong["power"][0] > factor * ALPHA, method


def test_one_sided_null_rejects_alpha_in_the_direction_of_benefit(trial):
    reps = 2000
    lo, hi = binomial_99(ALPHA, reps)
    null = simulate_power(trial, [40], reps, ALPHA, sided=1, seed=5, comparisons=["null"])
    assert null["rejections"].is_between(lo, hi).all(), null.select("endpoint", "power")


# ---------------------------------------------------------------------------------------------
# The fast mixed model against statsmodels MixedLM


def test_fast_mixed_model_agrees_with_statsmodels_mixedlm(trial_run):
    sm = pytest.importorskip("statsmodels.api")
    options = TrialOptions(visit_interval=3)
    data = load_trial(trial_run, ["alsfrs_slope"], options)
    long = trial_values(trial_run, "alsfrs_slope", options).filter(pl.col("seen"))
    rows = {
        (k[0], k[1]): (g["trial_month"].to_numpy(), g["value"].to_numpy())
        for k, g in long.group_by("patient_id", "arm")
    }
    n, reps = 12, 150
    idx = draw_indices(len(data.ids), n, reps, seed=3, key=(1, 1))
    fast_est, fast_z = analyse(data.summaries["alsfrs_slope"], idx, copy=1)
    slow_est, slow_z = np.empty(reps), np.empty(reps)
    for r in range(reps):
        t, y, trt, group = [], [], [], []
        for j, pid in enumerate(data.ids[idx[r]]):
            arm = "drug" if j < n else "placebo"
            if (pid, arm) not in rows:
                continue
            tt, yy = rows[(pid, arm)]
            t.append(tt), y.append(yy), group.append(np.full(len(tt), pid))
            trt.append(np.full(len(tt), float(arm == "drug")))
        t, y, trt, group = map(np.concatenate, (t, y, trt, group))
        x = np.column_stack([np.ones_like(t), t, trt, t * trt])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.MixedLM(y, x, groups=group, exog_re=x[:, :2]).fit(
                reml=True, method=["bfgs", "powell"]
            )
        assert fit.converged
        slow_est[r] = fit.params[3]
        # The same reference distribution as the fast method: t on 2n - 4 df, on the z scale.
        w = fit.params[3] / fit.bse[3]
        slow_z[r] = np.sign(w) * -stats.norm.ppf(stats.t.cdf(-abs(w), 2 * n - 4))
    crit = stats.norm.ppf(1 - ALPHA / 2)
    fast_power = np.mean(np.abs(fast_z) > crit)
    slow_power = np.mean(np.abs(slow_z) > crit)
    mc_error = np.sqrt(slow_power * (1 - slow_power) / reps)
    assert 0.15 < slow_power < 0.85  # a comparison in the informative middle
    assert abs(fast_power - slow_power) <= 2.58 * mc_error
    # Replicate by replicate the two fits are the same fit (up to MixedLM's tolerance).
    assert np.max(np.abs(fast_est - slow_est)) < 0.05 * np.std(slow_est)
    assert np.corrcoef(fast_z, slow_z)[0, 1] > 0.995


# ---------------------------------------------------------------------------------------------
# Closed forms


@pytest.mark.parametrize("sided", [1, 2])
def test_simulated_power_matches_the_closed_form_on_random_slope_data(sided):
    times = np.arange(0, 13, 3.0)
    delta, s2_slope, s2_error, n = 0.25, 0.3, 2.0, 40
    data = random_slope_trial(4000, delta, s2_slope, s2_error, times, seed=7)
    reps = 2000
    res = simulate_power(data, [n], reps, ALPHA, sided=sided, seed=1)
    expected = power_random_slope(n, delta, s2_slope, s2_error, times, alpha=ALPHA, sided=sided)
    got = res.filter(pl.col("comparison") == "treatment")
    assert 0.3 < expected < 0.9
    lo, hi = binomial_99(expected, reps)
    assert lo <= got["rejections"][0] <= hi, (got["power"][0], expected)
    # Common random numbers: each patient's treated copy is his placebo copy plus delta t.
    assert got["true_effect"][0] == pytest.approx(delta)
    assert got["mean_estimate"][0] == pytest.approx(delta, abs=0.01)
    null = res.filter(pl.col("comparison") == "null")
    lo, hi = binomial_99(ALPHA, reps)
    assert lo <= null["rejections"][0] <= hi


def test_closed_form_with_placebo_variance_components_lands_near_the_simulated_n(trial):
    """Edland's n from the placebo arm's REML variance components and the true effect, against
    the simulated n for 80% power. The closed form knows nothing of death, dropout or unequal
    follow-up, so the tolerance is loose: within a factor of 1.5 either way."""
    grid = sorted({int(f * trial.max_n_per_arm) for f in np.linspace(0.1, 1.0, 7)})
    sims = simulate_power(trial, grid, 400, ALPHA, sided=2, seed=2, comparisons=["treatment"])
    sizes = sample_size(sims)
    compared = []
    for endpoint in ("alsfrs_slope", "mrc_slope", "svc_slope", "cmap_slope"):
        simulated = sizes.filter(pl.col("endpoint") == endpoint)["n80"][0]
        if simulated is None:  # 80% power needs more patients than this small run holds
            continue
        closed = closed_form_n(trial, endpoint, alpha=ALPHA, power=0.8, sided=2)
        assert 1 / 1.5 <= simulated / closed["n"] <= 1.5, (endpoint, simulated, closed)
        compared.append(endpoint)
    assert "alsfrs_slope" in compared and len(compared) >= 2


# ---------------------------------------------------------------------------------------------
# The building blocks against references


def test_log_rank_and_cox_match_statsmodels():
    pytest.importorskip("statsmodels")
    from statsmodels.duration.hazard_regression import PHReg
    from statsmodels.duration.survfunc import survdiff

    rng = np.random.default_rng(0)
    m = 120
    x = (np.arange(m) < m // 2).astype(float)
    t = np.round(rng.exponential(10 / np.where(x == 1, 0.7, 1.0)))  # rounded: many ties
    c = rng.uniform(0, 15, m)
    time_, event = np.minimum(t, c), (t <= c).astype(float)
    z, beta = survival_test(time_[None], event[None], x[None])
    chi2, _ = survdiff(time_, event, x)
    assert z[0] ** 2 == pytest.approx(chi2, rel=1e-8)
    cox = PHReg(time_, x[:, None], status=event, ties="breslow").fit()
    assert beta[0] == pytest.approx(cox.params[0], abs=1e-6)


def test_rank_and_change_tests_match_scipy():
    rng = np.random.default_rng(1)
    a, b = np.round(rng.normal(1, 3, 40)), np.round(rng.normal(0, 3, 35))
    est, z = rank_test(a[None], b[None])
    mw = stats.mannwhitneyu(a, b, use_continuity=False, method="asymptotic")
    assert est[0] == pytest.approx(mw.statistic / (40 * 35))
    assert 2 * stats.norm.sf(abs(z[0])) == pytest.approx(mw.pvalue, rel=1e-8)
    a[:5] = np.nan
    est, z = change_test({"change": a[None]}, {"change": b[None]})
    welch = stats.ttest_ind(a[5:], b, equal_var=False)
    assert est[0] == pytest.approx(np.mean(a[5:]) - np.mean(b))
    assert 2 * stats.norm.sf(abs(z[0])) == pytest.approx(welch.pvalue, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Endpoints and options


def test_the_drug_shows_and_the_estimates_sit_near_the_truth(trial):
    n = min(100, trial.max_n_per_arm)
    res = simulate_power(trial, [n], 300, ALPHA, sided=2, seed=4, comparisons=["treatment"])
    by = {r["endpoint"]: r for r in res.iter_rows(named=True)}
    assert by["alsfrs_slope"]["true_effect"] > 0  # slower decline on the drug
    assert by["cmct_slope"]["true_effect"] < 0  # slower CMCT prolongation
    assert by["survival"]["true_effect"] < 1 and by["time_to_6pt_loss"]["true_effect"] < 1
    assert by["cafs"]["true_effect"] > 0.5
    assert by["alsfrs_slope"]["power"] > 0.8
    for name in ("alsfrs_slope", "mrc_slope", "cmap_slope"):
        r = by[name]
        assert r["mean_estimate"] == pytest.approx(r["true_effect"], rel=0.25), name


def test_endpoint_values_are_the_documented_quantities(trial_run):
    """MUNE sum as 100 ln(sum over the five muscles, both sides), CMCT as the mean over targets
    with an MEP, ALSFRS-R as recorded: recomputed here from the raw tables for every visit."""
    from analysis.endpoints import SUM_MUSCLES
    from analysis.io import open_run

    raw = (
        open_run(trial_run)["muscles"]
        .filter(pl.col("trial_month").is_between(0, 12))
        .with_columns(pl.col("muscle").cast(pl.String), pl.col("arm").cast(pl.String))
        .group_by("patient_id", "arm", "trial_month")
        .agg(
            (100 * pl.col("mune").filter(pl.col("muscle").is_in(SUM_MUSCLES)).sum().log())
            .alias("mune"),
            pl.col("mune").filter(pl.col("muscle").is_in(SUM_MUSCLES)).len().alias("k"),
            pl.col("cmct_ms").mean().alias("cmct"),
        )
        .collect()
    )
    assert (raw["k"] == 2 * len(SUM_MUSCLES)).all()
    for endpoint, col in (("mune_slope", "mune"), ("cmct_slope", "cmct")):
        got = trial_values(trial_run, endpoint).join(raw, on=["patient_id", "arm", "trial_month"])
        assert got.height > 1000
        assert np.allclose(got["value"], got[col], rtol=1e-12, equal_nan=True)
    v = trial_values(trial_run, "alsfrs_slope")
    assert v["trial_month"].max() == 12 and v["value"].max() <= 48


def test_options_window_dropout_and_enrichment(trial_run, trial):
    short = load_trial(trial_run, ["alsfrs_slope", "survival"], TrialOptions(6, 3))
    assert list(short.times) == [0, 3, 6]
    assert short.summaries["alsfrs_slope"].obs["n"].max() == 3
    assert short.summaries["survival"].obs["time"].max() <= 6
    more = load_trial(trial_run, ["survival"], TrialOptions(dropout_per_month=0.2, seed=1))
    seen = trial.summaries["survival"].obs["event"].sum()
    assert more.summaries["survival"].obs["event"].sum() < seen
    fast = load_trial(trial_run, ["alsfrs_slope"], TrialOptions(enrich="dfs >= 0.5"))
    assert 0 < len(fast.ids) < len(trial.ids)
    assert (fast.screening["dfs"] >= 0.5).all()
    same = load_trial(trial_run, ["alsfrs_slope"], TrialOptions(enrich="0.5"))
    assert np.array_equal(same.ids, fast.ids)


# ---------------------------------------------------------------------------------------------
# Command line


def test_power_command_writes_its_outputs_and_the_same_seed_gives_the_same_numbers(
    trial_run, tmp_path
):
    args = ["power", str(trial_run), "--n-per-arm", "20,40", "--replicates", "60"]
    assert main([*args, "--out", str(tmp_path / "a"), "--seed", "9"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--seed", "9"]) == 0
    assert main([*args, "--out", str(tmp_path / "c"), "--seed", "10"]) == 0
    a = pl.read_parquet(tmp_path / "a" / "power.parquet")
    assert a.equals(pl.read_parquet(tmp_path / "b" / "power.parquet"))
    assert not a.equals(pl.read_parquet(tmp_path / "c" / "power.parquet"))
    assert set(a["comparison"]) == {"treatment", "null"}
    for col in ("endpoint", "comparison", "arm", "n_per_arm", "replicates", "alpha", "rejections",
                "power", "ci_low", "ci_high", "mean_estimate", "true_effect"):
        assert col in a.columns
    sizes = pl.read_csv(tmp_path / "a" / "sample_size.csv")
    assert {"n80", "n80_low", "n80_high", "n90"} <= set(sizes.columns)
    assert set(sizes["endpoint"]) == set(ENDPOINTS)
    html = (tmp_path / "a" / "power.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    # Python API, same seed, same numbers.
    p1, _ = power_command(trial_run, tmp_path / "d", [20], 60, seed=9)
    p2, _ = power_command(trial_run, tmp_path / "e", [20], 60, seed=9)
    assert p1.equals(p2)


def _fake_run(tmp_path, text: str):
    folder = tmp_path / "fake"
    (folder / "patients").mkdir(parents=True)
    (folder / "scenario.toml").write_text(text)
    return folder


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--endpoints", "alsfrs_slope,frobnicate"], ["frobnicate", "valid", "alsfrs_slope"]),
        (["--n-per-arm", "50,100000"], ["100000 per arm", "at most", "per arm"]),
        (["--alpha", "1.5"], ["alpha"]),
        (["--alpha", "abc"], ["alpha"]),
        (["--replicates", "0"], ["replicates"]),
        (["--replicates", "ten"], ["replicates"]),
        (["--sided", "3"], ["sided"]),
        (["--n-per-arm", "fifty"], ["n-per-arm"]),
        (["--enrich", "speed > 2"], ["speed", "valid"]),
        (["--trial-months", "24", "--n-per-arm", "20"], ["at most the run's trial"]),
    ],
)
def test_bad_input_gets_one_line_and_exit_code_2(trial_run, tmp_path, capsys, extra, words):
    code = main(["power", str(trial_run), "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("progression: error:")
    for w in words:
        assert w in err


def test_a_run_without_a_treatment_arm_is_refused(tmp_path, capsys):
    text = (SCENARIOS / "trial_als.toml").read_text().replace(
        'treatment = "drug"', 'treatment = "none"'
    )
    fake = _fake_run(tmp_path, text)
    assert main(["power", str(fake), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no treatment arm" in err
