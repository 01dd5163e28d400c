"""analysis/: ready queries on a small run made here, the Kaplan-Meier estimator against a
textbook example and scipy, and the HTML report."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import analysis
from analysis import open_run, quantiles, spread
from analysis.emergence import STATES
from analysis.quantiles import median_quartiles
from analysis.report import ReportError, write_report
from progression.runner import run as simulate
from tests.conftest import small


@pytest.fixture(scope="session")
def als_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("als") / "run"
    simulate(small("als_natural_history", patients=60), out, workers=1, chunk_size=30)
    return out


@pytest.fixture(scope="session")
def mnd_path(tmp_path_factory):
    """A mixed population (latent ALS, PMA and PLS)."""
    out = tmp_path_factory.mktemp("mnd") / "run"
    simulate(small("mnd_population", patients=120), out, workers=1, chunk_size=60)
    return out


@pytest.fixture(scope="session", params=["als", "mnd"])
def run_path(request):
    return request.getfixturevalue(f"{request.param}_path")


@pytest.fixture(scope="session")
def run(run_path):
    return open_run(run_path)


def _symptomatic(run) -> pl.DataFrame:
    return (
        run["patients"]
        .filter(pl.col("symptom_onset_month").is_not_null())
        .select("patient_id", pl.col("phenotype").cast(pl.String), "symptom_onset_month",
                "first_visit_month", "end_month", "death_month")
        .collect()
    )


# ---------------------------------------------------------------------------- open_run


def test_open_run_is_lazy_and_functions_take_a_path(run_path, run):
    assert set(analysis.TABLES) <= set(run)
    assert all(isinstance(lf, pl.LazyFrame) for lf in run.values())
    assert "chunk" not in run["patients"].collect_schema().names()
    by_path = analysis.median_survival(str(run_path))
    assert by_path.equals(analysis.median_survival(run))


# ---------------------------------------------------------------------------- emergence


def test_emergence_states_are_shares_of_the_patients_followed(run):
    em = analysis.phenotype_emergence(run, months=range(0, 61, 6))
    assert set(em["state"]) == set(STATES)
    assert em["share"].drop_nulls().is_between(0, 1).all()
    totals = em.group_by("phenotype", "months_since_onset").agg(
        pl.col("patients").sum(), pl.col("followed").first()
    )
    assert (totals["patients"] == totals["followed"]).all()
    # Censoring only removes patients: the number followed never grows with time.
    for _, g in em.filter(pl.col("state") == "dead").group_by("phenotype"):
        followed = g.sort("months_since_onset")["followed"].to_numpy()
        assert (np.diff(followed) <= 0).all()
    # At onset nobody has been diagnosed yet in cohorts first seen after symptoms.
    start = em.filter(pl.col("months_since_onset") == 0)
    assert start.filter(pl.col("state").is_in(["PMA", "PLS", "ALS"]))["patients"].sum() == 0


def test_confusion_counts_sum_to_the_patients_seen(run):
    conf = analysis.confusion(run, months=(12, 24))
    cats = ["none", "PMA", "PLS", "ALS"]
    assert (conf.select(pl.sum_horizontal(cats).alias("s"))["s"] == conf["seen"]).all()
    pts = _symptomatic(run)
    for m in (12, 24):
        seen = pts.filter(
            pl.col("first_visit_month") <= pl.col("symptom_onset_month") + m
        ).group_by("phenotype").len()
        got = conf.filter(pl.col("months_since_onset") == m).select("phenotype", "seen")
        joined = seen.join(got, on="phenotype", how="full", coalesce=True).fill_null(0)
        assert (joined["len"] == joined["seen"]).all()


def test_time_to_diagnosis_matches_the_visits_table(run):
    ttd = analysis.time_to_diagnosis(run, by=None)
    assert list(ttd["diagnosis"]) == ["any", "PMA", "PLS", "ALS"]
    assert (ttd["diagnosed"] <= ttd["patients"]).all()
    ok = ttd.filter(pl.col("diagnosed") > 0)
    assert (ok["q25"] <= ok["median"]).all() and (ok["median"] <= ok["q75"]).all()
    assert (ok["median_after_first_visit"] >= 0).all()
    # Independently: the first visit whose diagnosis is ALS, from the visits table.
    pts = _symptomatic(run)
    first_als = (
        run["visits"]
        .filter(pl.col("diagnosis") == "ALS")
        .group_by("patient_id")
        .agg(pl.col("month").min())
        .collect()
        .join(pts, on="patient_id")
        .select((pl.col("month") - pl.col("symptom_onset_month")).alias("delay"))
    )
    als = ttd.filter(pl.col("diagnosis") == "ALS").row(0, named=True)
    assert als["diagnosed"] == len(first_als)
    if len(first_als):
        assert als["median"] == pytest.approx(first_als["delay"].median())


def test_conversions_are_later_als_diagnoses(run):
    per = analysis.conversion_events(run)
    assert (per["months_between"] > 0).all()
    assert set(per["conversion"]) <= {"PMA->ALS", "PLS->ALS"}
    conv = analysis.conversions(run)
    assert (conv["converted"] <= conv["first_diagnosed"]).all()
    assert conv["share"].drop_nulls().is_between(0, 1).all()
    # Latent PMA has no UMN process and latent PLS no LMN process: they never convert.
    assert per.filter(pl.col("phenotype").is_in(["PMA", "PLS"])).height == 0
    total = conv.group_by("conversion").agg(pl.col("converted").sum()).sort("conversion")
    counts = per.group_by("conversion").len().sort("conversion")
    for row in counts.iter_rows(named=True):
        assert total.filter(pl.col("conversion") == row["conversion"])["converted"][0] == (
            row["len"]
        )


# ---------------------------------------------------------------------------- trajectories


RANGES = {
    "cmap_mv": (0, 60),
    "mune": (0, 5000),
    "munix": (0, 5000),
    "cmct_ms": (0, 100),
    "fasciculations_per_min": (0, 500),
    "fibrillation_grade": (0, 4),
    "mrc_grade": (0, 5),
    "alsfrs_r": (0, 48),
    "svc_percent": (0, 200),
}


def test_trajectories_cover_every_test_within_range(run):
    tr = analysis.trajectory_quartiles(run)
    assert set(tr["test"]) == set(analysis.TESTS) == set(RANGES)
    assert (tr["q25"] <= tr["median"]).all() and (tr["median"] <= tr["q75"]).all()
    assert (tr["months_since_onset"] % 3 == 0).all()
    for test, (lo, hi) in RANGES.items():
        g = tr.filter(pl.col("test") == test)
        assert g["median"].is_between(lo, hi).all(), test
        assert g["muscle"].is_null().all() == (test in ("alsfrs_r", "svc_percent"))
    # Every visit of a symptomatic patient lands in exactly one bin.
    visits = run["visits"].join(
        run["patients"].filter(pl.col("symptom_onset_month").is_not_null()).select("patient_id"),
        on="patient_id",
    ).select(pl.len()).collect().item()
    assert tr.filter(pl.col("test") == "alsfrs_r")["n"].sum() == visits


def test_alsfrs_declines_in_als(run):
    sl = analysis.slopes(run)
    als = sl.filter((pl.col("phenotype") == "ALS") & (pl.col("test") == "alsfrs_r"))
    assert als["mean"][0] < 0
    with pytest.raises(ValueError, match="unknown test"):
        analysis.trajectory_quartiles(run, tests=["no_such_test"])


# ---------------------------------------------------------------------------- compensation


def test_compensation_curve_shapes_and_the_hidden_loss(run):
    curve = analysis.compensation_curve(run, bins=10)
    assert set(curve["measure"]) == {"cmap_mv", "mune", "munix", "strength_fraction"}
    assert curve["units_lost"].is_between(0, 1).all()
    assert (curve["median"] > 0).all()
    mune = curve.filter((pl.col("measure") == "mune") & (pl.col("n") >= 10)).sort("units_lost")
    assert mune["median"][-1] < mune["median"][0]
    cmap0 = curve.filter((pl.col("measure") == "cmap_mv") & (pl.col("units_lost") < 0.1))
    assert 0.7 < cmap0["median"][0] < 1.3
    # Reinnervation hides loss: CMAP falls below 80% only after MUNE does.
    hid = analysis.hidden_loss(run, by=None, measures=["cmap_mv", "mune"])
    cmap, mune_at = hid["units_lost"].to_list()
    assert cmap is not None and mune_at is not None and cmap > mune_at
    ref = analysis.healthy_reference(run)
    assert (ref["cmap_mv"] > 0).all() and ref["muscle"].n_unique() == ref.height


def test_relative_to_first_visit_starts_at_one(run):
    rel = analysis.relative_measures(run, baseline="first_visit", intact=0.0).collect()
    first = rel.sort("month").group_by("patient_id", "muscle", "side").first()
    # A muscle with no unit left by the first visit has CMAP 0: 0 / 0 is NaN, not 1.
    cmap_rel = first["cmap_mv_rel"].to_numpy()
    assert np.allclose(cmap_rel[~np.isnan(cmap_rel)], 1.0)
    assert (first.filter(pl.col("cmap_mv_rel").is_nan())["units_lost"] == 1.0).all()
    with pytest.raises(ValueError, match="baseline"):
        analysis.relative_measures(run, baseline="nope")


# ---------------------------------------------------------------------------- survival

# Freireich 1963 6-MP arm (Kleinbaum and Klein, Survival Analysis, table 2.1): weeks in
# remission, 0 = censored. R: survfit(Surv(t, e) ~ 1) gives these survival values and
# Greenwood standard errors, median 23 with 95% CI (16, NA) on the log scale.
SIX_MP_T = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
SIX_MP_E = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
SIX_MP_S = {6: 0.857, 7: 0.807, 10: 0.753, 13: 0.690, 16: 0.627, 22: 0.538, 23: 0.448}
SIX_MP_SE = {6: 0.0764, 7: 0.0869, 10: 0.0963, 13: 0.1068, 16: 0.1141, 22: 0.1282, 23: 0.1346}


def _six_mp() -> pl.DataFrame:
    return pl.DataFrame({"months": SIX_MP_T, "died": [bool(e) for e in SIX_MP_E]})


def test_kaplan_meier_matches_the_textbook_example():
    km = analysis.kaplan_meier_estimate(_six_mp(), conf_type="log")
    events = km.filter(pl.col("events") > 0)
    assert events["time"].to_list() == list(SIX_MP_S)
    assert np.allclose(events["survival"], list(SIX_MP_S.values()), atol=5e-4)
    assert np.allclose(events["se"], list(SIX_MP_SE.values()), atol=5e-4)
    assert km["at_risk"].to_list()[:3] == [21, 17, 16]
    med = analysis.km_medians(km).row(0, named=True)
    assert (med["median"], med["lower"], med["upper"]) == (23.0, 16.0, None)
    assert (med["patients"], med["deaths"]) == (21, 9)
    loglog = analysis.km_medians(analysis.kaplan_meier_estimate(_six_mp())).row(0, named=True)
    assert (loglog["median"], loglog["lower"], loglog["upper"]) == (23.0, 13.0, None)


def test_kaplan_meier_by_hand_on_a_tiny_frame():
    # Times 1, 2+, 3, 3, 5+: S(1) = 4/5, S(3) = 4/5 * (1 - 2/3) = 4/15; median 3.
    df = pl.DataFrame({"months": [1.0, 2, 3, 3, 5], "died": [True, False, True, True, False]})
    km = analysis.kaplan_meier_estimate(df)
    assert km["time"].to_list() == [1.0, 2.0, 3.0, 5.0]
    assert km["at_risk"].to_list() == [5, 4, 3, 1]
    assert np.allclose(km["survival"], [0.8, 0.8, 4 / 15, 4 / 15])
    assert analysis.km_medians(km)["median"][0] == 3.0
    # Exactly one half on a flat stretch: the median is the midpoint to the next event (R).
    half = pl.DataFrame({"months": [1.0, 2, 3, 4], "died": [True, True, True, True]})
    assert analysis.km_medians(analysis.kaplan_meier_estimate(half))["median"][0] == 2.5


@pytest.mark.filterwarnings("ignore:The confidence interval is undefined")
@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 30), st.booleans()), min_size=2, max_size=40
    ).filter(lambda r: any(e for _, e in r))
)
def test_kaplan_meier_agrees_with_scipy(rows):
    stats = pytest.importorskip("scipy.stats")
    t = np.array([float(x) for x, _ in rows])
    e = np.array([d for _, d in rows])
    km = analysis.kaplan_meier_estimate(pl.DataFrame({"months": t, "died": e}))
    res = stats.ecdf(stats.CensoredData(uncensored=t[e], right=t[~e]))
    times = km["time"].to_numpy()
    assert np.allclose(km["survival"].to_numpy(), res.sf.evaluate(times), atol=1e-12)
    ok = (km["survival"] > 0) & (km["survival"] < 1) & (km["se"] > 0)
    if ok.any():
        ci = res.sf.confidence_interval(method="log-log")
        sel = km.filter(ok)
        assert np.allclose(sel["lower"], ci.low.evaluate(sel["time"].to_numpy()), atol=1e-9)
        assert np.allclose(sel["upper"], ci.high.evaluate(sel["time"].to_numpy()), atol=1e-9)


def test_onset_site_is_where_the_first_symptoms_appeared(run):
    """``onset_site`` as clinical papers mean it: the region of the earliest region_onset event
    (null if never symptomatic); the latent start of degeneration is degeneration_onset_site."""
    from analysis.io import ONSET_SITE, patients

    p = patients(run, ["onset_site", "degeneration_onset_site", "onset_region",
                       "symptom_onset_month"]).collect()
    assert p["onset_site"].is_null().to_list() == p["symptom_onset_month"].is_null().to_list()
    assert p["degeneration_onset_site"].to_list() == [ONSET_SITE[r] for r in p["onset_region"]]
    ev = (
        run["events"].filter(pl.col("event") == "region_onset")
        .with_columns(pl.col("region").cast(pl.String))
        .filter(pl.col("month") == pl.col("month").min().over("patient_id"))
        .group_by("patient_id").agg(pl.col("region").replace_strict(ONSET_SITE).alias("first"))
        .collect()
    )
    got = p.join(ev, on="patient_id", how="inner")
    assert got.height == p["onset_site"].count() > 0
    assert all(site in first for site, first in zip(got["onset_site"], got["first"], strict=True))


def test_run_survival_is_monotone_and_consistent(run):
    km = analysis.kaplan_meier(run, by=["phenotype", "onset_site"])
    assert km["survival"].is_between(0, 1).all()
    for _, g in km.group_by("phenotype", "onset_site"):
        s = g.sort("time")["survival"].to_numpy()
        assert (np.diff(s) <= 1e-12).all()
        assert (np.diff(g.sort("time")["at_risk"].to_numpy()) < 0).all()
    band = km.drop_nulls(["lower", "upper"])
    assert ((band["lower"] <= band["survival"] + 1e-12)
            & (band["survival"] <= band["upper"] + 1e-12)).all()
    # Grouped estimates equal estimates on each group alone.
    times = analysis.survival_times(run).collect()
    med = analysis.median_survival(run)
    for ph in med["phenotype"]:
        alone = analysis.km_medians(
            analysis.kaplan_meier_estimate(times.filter(pl.col("phenotype") == ph))
        )
        assert alone["median"][0] == med.filter(pl.col("phenotype") == ph)["median"][0]
    pts = _symptomatic(run)
    assert med["patients"].sum() == pts.height
    assert med["deaths"].sum() == pts["death_month"].is_not_null().sum()
    at = analysis.survival_at(run, months=(12, 10_000))
    assert at.filter(pl.col("months") == 10_000)["survival"].is_null().all()
    als = at.filter((pl.col("phenotype") == "ALS") & (pl.col("months") == 12)).row(0, named=True)
    expected = analysis.kaplan_meier(run).filter(
        (pl.col("phenotype") == "ALS") & (pl.col("time") <= 12)
    )["survival"]
    assert als["survival"] == pytest.approx(expected[-1] if len(expected) else 1.0)
    followed = times.filter((pl.col("phenotype") == "ALS") & (pl.col("months") >= 12))
    assert als["at_risk"] == followed.height


# ---------------------------------------------------------------------------- spread


def test_region_onsets_and_spread(run):
    ons = analysis.region_onsets(run)
    assert ons["order"].min() == 1 and ons["order"].max() <= 4
    assert ons.group_by("patient_id").agg(pl.col("region").n_unique() == pl.len())[
        "region"
    ].all()
    steps = ons.sort("patient_id", "order").with_columns(
        pl.col("months_since_onset").diff().over("patient_id").alias("d")
    )
    assert (steps["d"].drop_nulls() >= 0).all()
    sp = analysis.spread_times(run)
    assert set(sp["order"]) == {2, 3, 4}
    assert (sp["reached"] <= sp["patients"]).all()
    for _, g in sp.drop_nulls("median").group_by("phenotype"):
        assert (np.diff(g.sort("order")["median"].to_numpy()) >= 0).all()
    mx = analysis.spread_matrix(run)
    assert (mx["first_region"] != mx["region"]).all()
    assert (mx["reached"] <= mx["patients"]).all()


def test_split_hand(run):
    sh = analysis.split_hand(run).collect()
    assert (sh["side"].is_in(["left", "right"])).all()
    # equal_nan: a hand with every unit lost has APB = ADM = 0 (ratio 0/0, NaN on both sides).
    assert np.allclose(sh["apb_adm_ratio"], sh["apb_mv"] / sh["adm_mv"], equal_nan=True)
    assert np.allclose(
        sh["split_hand_index"], sh["apb_mv"] * sh["fdi_mv"] / sh["adm_mv"], equal_nan=True
    )
    summary = analysis.split_hand_summary(run)
    assert set(summary["hands"]) <= {"intact", "all"}
    assert summary["split_share"].is_between(0, 1).all()
    assert (summary["ratio_q25"] <= summary["ratio_median"]).all()


def _split_hand_reference(rows: pl.DataFrame, bin_months: float = 6.0) -> pl.DataFrame:
    """:func:`analysis.split_hand_summary` by the readable one-pass polars formulas."""
    t = pl.col("months_since_onset")
    aggs = [
        pl.len().cast(pl.Int64).alias("n"),
        *median_quartiles("split_hand_index", "index_"),
        *median_quartiles("apb_adm_ratio", "ratio_"),
        (pl.col("apb_adm_ratio") < spread.SPLIT_RATIO).mean().alias("split_share"),
    ]
    binned = (
        rows.filter(t.is_not_null())
        .with_columns(((t / bin_months).round(0) * bin_months).alias("months_since_onset"))
        .group_by("phenotype", "months_since_onset").agg(aggs)
        .with_columns(pl.lit("all").alias("hands"))
    )
    intact = (
        rows.filter(pl.col("units_alive_min") >= spread.INTACT_UNITS)
        .group_by("phenotype").agg(aggs)
        .with_columns(pl.lit("intact").alias("hands"),
                      pl.lit(None, pl.Float64).alias("months_since_onset"))
    )
    cols = ["hands", "phenotype", "months_since_onset", "n", "index_median", "index_q25",
            "index_q75", "ratio_median", "ratio_q25", "ratio_q75", "split_share"]
    return pl.concat([intact.select(cols), binned.select(cols)]).sort(
        "hands", "phenotype", "months_since_onset", descending=[True, False, False],
        nulls_last=True)


def test_split_hand_summary_is_the_one_pass_table_in_any_batches(run, monkeypatch):
    """The hands are assembled a batch of patients at a time on disk and their quartiles
    taken in bounded memory: the table is the one-pass polars table of :func:`split_hand`'s
    rows, whatever the batch of patients or the budget of values held at once."""
    whole = analysis.split_hand_summary(run)
    reference = _split_hand_reference(analysis.split_hand(run).collect())
    assert_frame_equal(whole, reference)
    monkeypatch.setattr(analysis.io, "PATIENT_BATCH", 7)
    monkeypatch.setattr(quantiles, "MAX_VALUES", 500)  # quartiles in passes over key batches
    assert_frame_equal(analysis.split_hand_summary(run), whole)


@pytest.mark.parametrize("query", [
    lambda r: analysis.slopes(r),
    lambda r: analysis.phenotype_emergence(r),
    lambda r: analysis.split_hand_summary(r),
    lambda r: analysis.spread_times(r),
    lambda r: analysis.confusion(r),
    lambda r: analysis.time_to_diagnosis(r),
], ids=["slopes", "emergence", "split_hand", "spread", "confusion", "time_to_diagnosis"])
def test_queries_in_patient_batches_equal_the_whole(run, monkeypatch, query):
    """The queries that work a batch of patients at a time (bounded memory) give the table of
    one batch, whatever the batch (7 patients: many batches, some empty)."""
    whole = query(run)
    monkeypatch.setattr(analysis.io, "PATIENT_BATCH", 7)
    assert_frame_equal(query(run), whole, check_exact=False, rel_tol=1e-12)


@pytest.fixture(scope="module")
def trial_run(tmp_path_factory):
    """A two-arm trial: every patient is in both arms, under the same id. 120 patients: enough
    for a conversion from PMA to ALS in each arm (about 2% of ALS patients make one)."""
    out = tmp_path_factory.mktemp("trial") / "run"
    simulate(small("trial_als", patients=120), out, workers=1, chunk_size=120)
    return open_run(out)


@pytest.mark.parametrize("query", [
    lambda r, by: analysis.slopes(r, by=by),
    lambda r, by: analysis.phenotype_emergence(r, by=by),
    lambda r, by: analysis.spread_times(r, by=by),
    lambda r, by: analysis.conversions(r, by=by),
    lambda r, by: analysis.trajectory_quartiles(r, tests=["alsfrs_r", "cmap_mv"], by=by),
    lambda r, by: analysis.split_hand_summary(r, by=by),
], ids=["slopes", "emergence", "spread", "conversions", "trajectories", "split_hand"])
def test_a_trial_s_arms_are_read_apart(trial_run, query):
    """Grouped by arm, a query over a trial gives for each arm what it gives over that arm's
    rows alone (the same patient ids are in both arms: per-patient joins must key on the arm
    too, or the arms mix)."""
    both = query(trial_run, "arm")
    arms = both["arm"].unique().sort().to_list()
    assert arms == ["drug", "placebo"]
    for a in arms:
        alone = {k: v.filter(pl.col("arm") == a) for k, v in trial_run.items()}
        expected = query(alone, "arm")
        assert_frame_equal(both.filter(pl.col("arm") == a), expected, check_row_order=False)


def test_split_hand_counts_each_hand_once_in_a_trial(tmp_path):
    """A trial holds every patient once per arm: each arm's hands are its own."""
    out = tmp_path / "trial"
    simulate(small("trial_als", patients=12), out, workers=1, chunk_size=12)
    r = open_run(out)
    hands = analysis.split_hand(r, by="arm").collect()
    visits = r["muscles"].filter(pl.col("muscle") == "APB").collect()
    assert hands.height == visits.height
    assert hands.select("patient_id", "arm", "month", "side").is_unique().all()


# ---------------------------------------------------------------------------- report


def test_report_is_one_self_contained_html_file(run_path, tmp_path):
    out = tmp_path / "report"
    path = write_report(run_path, out)
    text = path.read_text()
    figures = re.findall(r'<img alt="Figure \d+" src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
                         text)
    assert len(figures) >= 5
    assert all(len(f) > 1000 for f in figures)
    for heading in ("Phenotype emergence", "Test trajectories", "Compensation", "Survival",
                    "Spread"):
        assert f"<h2>{heading}</h2>" in text
    assert "Not drawn" not in text
    assert "<table>" in text and "http" not in text.split("<body>")[1].split("Written by")[0]
    with pytest.raises(ReportError, match="exists"):
        write_report(run_path, out)


def test_report_command_line(als_path, tmp_path, capsys):
    from progression.studies.cli import main

    out = tmp_path / "report"
    out.mkdir()
    (out / "report.html").write_text("an older report")
    assert main(["report", str(als_path), "--out", str(out)]) == 2
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "exists" in err[0] and "not a progression run" in err[1]
    assert (out / "report.html").read_text() == "an older report"
    assert main(["report", str(als_path), "--out", str(out), "--overwrite"]) == 0
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_analyst_guide_examples_run(als_path, capsys):
    """The analyst's guide's Python, on this module's cohort (tests/test_docs_site.py runs the
    whole guide on its own small run)."""
    from tests.conftest import ROOT

    guide = (ROOT / "docs" / "guides" / "analyst.md").read_text()
    blocks = re.findall(r"^```python\n(.+?)\n```", guide, flags=re.S | re.M)
    assert len(blocks) >= 4
    namespace: dict = {}
    for code in blocks:
        code = code.replace("runs/als", str(als_path))
        exec(compile(code, "docs/guides/analyst.md", "exec"), namespace)
    assert "median" in capsys.readouterr().out
