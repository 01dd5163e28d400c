"""The cohort's Mesa agents (``progression.agents.CohortPatient``): views on the model's arrays
that Mesa's AgentSet selection, grouping and DataCollector work on."""

from __future__ import annotations

import mesa
import numpy as np
import polars as pl

from progression.model import CohortModel
from tests.conftest import small


def _cohort(months: int = 30, **overrides) -> CohortModel:
    scenario = small("mnd_population", patients=60, **overrides)
    model = CohortModel(scenario, np.arange(100, 160), scenario.arm_names[0])
    for _ in range(months):
        model.step()
    return model


def test_every_patient_is_an_agent_that_reads_the_arrays():
    model = _cohort()
    agents = model.agents
    assert len(agents) == 60
    assert [a.patient_id for a in agents] == list(range(100, 160))
    a = agents[5]
    assert np.array_equal(a.units_alive, model.alive_count[5])
    assert not a.units_alive.flags.writeable
    assert a.units_alive_fraction == model.alive_count[5].sum() / model.body.n_units
    np.testing.assert_array_equal(a.strength, model.strength()[5])
    model.step()  # the agent follows the model: nothing is copied
    assert np.array_equal(a.units_alive, model.alive_count[5])


def test_agentset_selection_and_grouping_agree_with_the_tables():
    model = _cohort(months=40)
    agents = model.agents
    tables = {k: pl.from_arrow(t) for k, t in model.results().items()}
    patients = tables["patients"]
    # Grouping by latent phenotype counts the patients table's phenotypes.
    assert agents.groupby("phenotype").count() == dict(
        patients.group_by("phenotype").len().iter_rows())
    # Selecting the diagnosed: the diagnosis of each patient's last visit.
    last = tables["visits"].sort("month").group_by("patient_id").last()
    als = set(last.filter(pl.col("diagnosis") == "ALS")["patient_id"])
    assert als and {a.patient_id for a in agents.select(lambda p: p.diagnosis == "ALS")} == als
    seen = agents.select(lambda p: p.last_visit is not None)
    assert len(seen) == last.height
    for a in seen:
        row = last.filter(pl.col("patient_id") == a.patient_id).row(0, named=True)
        assert a.alsfrs_r == row["alsfrs_r"] and a.last_visit_month == row["month"]
        assert a.last_visit["svc_percent"] == row["svc_percent"]
        assert (a.lmn_regions, a.umn_regions) == (row["lmn_regions"], row["umn_regions"])
    m = tables["muscles"]
    a = seen[0]
    apb = model.body.index("APB", "left")
    stored = m.filter((pl.col("patient_id") == a.patient_id)
                      & (pl.col("month") == a.last_visit_month)
                      & (pl.col("muscle") == "APB") & (pl.col("side") == "left"))
    assert a.last_muscles["cmap_mv"][apb] == stored["cmap_mv"][0]
    dead = agents.select(lambda p: not p.living)
    assert {p.patient_id for p in dead} == set(
        patients.filter(pl.col("death_month").is_not_null())["patient_id"])
    # Aggregation over a group: the weakest diagnosed patient has lost units.
    weakest = agents.groupby("diagnosis").agg("units_alive_fraction", min)
    assert weakest.get("ALS", 1.0) < 1.0


def test_a_datacollector_records_agents_and_the_cohort():
    scenario = small("als_natural_history", patients=20)
    model = CohortModel(scenario, np.arange(20), scenario.arm_names[0])
    collector = mesa.DataCollector(
        model_reporters={"diagnosed": lambda m: len(
            m.agents.select(lambda p: p.diagnosis != "none"))},
        agent_reporters={"diagnosis": "diagnosis", "units": "units_alive_fraction"},
    )
    for _ in range(36):
        model.step()
        collector.collect(model)
    per_agent = collector.get_agent_vars_dataframe()
    assert len(per_agent) == 36 * 20
    final = per_agent.xs(36, level="Step")
    assert list(final["diagnosis"]) == list(model.examiner.diagnosis)
    assert collector.get_model_vars_dataframe()["diagnosed"].is_monotonic_increasing
    assert (per_agent.groupby(level="AgentID")["units"].diff().dropna() <= 0).all()
