"""Trials inside the cohort: screening, enrolment, the trial calendar, dropout, and arms that
differ only by the treatment."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from progression.model import simulate_chunk
from progression.scenario import ScenarioError
from tests.conftest import small


@pytest.fixture(scope="module")
def trial_tables():
    scenario = small("trial_als", patients=120)
    return {k: pl.from_arrow(v) for k, v in simulate_chunk(scenario, np.arange(120)).tables.items()}


def test_screening_and_enrolment_are_the_same_in_every_arm(trial_tables):
    p = trial_tables["patients"]
    cols = ["patient_id", "screenings", "enrolled", "enrolment_month", "symptom_onset_month"]
    placebo = p.filter(pl.col("arm") == "placebo").select(cols).sort("patient_id")
    drug = p.filter(pl.col("arm") == "drug").select(cols).sort("patient_id")
    assert placebo.equals(drug)
    assert 0.3 < placebo["enrolled"].mean() < 1.0  # some screen failures, most enrolled
    base = trial_tables["visits"].filter(pl.col("trial_month") == 0)
    cols = ["patient_id", "alsfrs_r", "svc_percent", "diagnosis"]
    assert (
        base.filter(pl.col("arm") == "placebo")
        .select(cols)
        .sort("patient_id")
        .equals(base.filter(pl.col("arm") == "drug").select(cols).sort("patient_id"))
    )
    assert (base["diagnosis"] == "ALS").all()


def test_trial_visits_are_monthly_for_the_trial_then_clinic_visits(trial_tables):
    v = trial_tables["visits"].filter(
        pl.col("arm") == "placebo", pl.col("trial_month").is_not_null()
    )
    gaps = (
        v.sort("patient_id", "month")
        .with_columns(gap=pl.col("month").diff().over("patient_id"))
        .drop_nulls("gap")
    )
    assert (gaps.filter(pl.col("trial_month") <= 12)["gap"] == 1).all()
    assert (gaps.filter(pl.col("trial_month") > 12)["gap"] == 3).all()
    m = trial_tables["muscles"].filter(pl.col("arm") == "placebo")
    assert m["trial_month"].null_count() < m.height
    assert m.filter(pl.col("trial_month").is_not_null())["trial_month"].min() == 0


def test_the_drug_slows_decline_and_death(trial_tables):
    v = trial_tables["visits"].filter(pl.col("trial_month").is_in([0.0, 12.0]))
    change = (
        v.pivot(on="trial_month", index=["patient_id", "arm"], values="alsfrs_r")
        .drop_nulls()
        .with_columns(change=pl.col("12.0") - pl.col("0.0"))
        .group_by("arm")
        .agg(pl.col("change").mean())
    )
    by_arm = dict(zip(change["arm"], change["change"], strict=True))
    assert by_arm["drug"] > by_arm["placebo"] + 1  # points per year preserved
    deaths = trial_tables["patients"].group_by("arm").agg(pl.col("death_month").mean())
    d = dict(zip(deaths["arm"], deaths["death_month"], strict=True))
    assert d["drug"] > d["placebo"]


def test_dropout_is_recorded_within_the_trial_only(trial_tables):
    p = trial_tables["patients"].filter(pl.col("dropout_month").is_not_null())
    assert p.height > 0
    assert ((p["dropout_month"] - p["enrolment_month"]) < 12).all()
    ev = trial_tables["events"].filter(pl.col("event") == "dropout")
    assert ev.height == p.height


def test_screen_failures_stay_in_the_output_flagged():
    scenario = small("trial_als", patients=20, **{"trial.eligibility.min_svc_percent": 200})
    t = simulate_chunk(scenario, np.arange(20)).tables
    p = pl.from_arrow(t["patients"])
    assert p.height == 40 and not p["enrolled"].any()
    assert (p.filter(pl.col("first_visit_month").is_not_null())["screenings"] > 0).all()
    assert pl.from_arrow(t["visits"])["trial_month"].null_count() == t["visits"].num_rows


def test_enrolment_start_needs_a_trial():
    with pytest.raises(ScenarioError, match="treatments.drug.start"):
        small("trial_als", patients=5, **{"trial": None})
