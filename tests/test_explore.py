"""The explorer's model and page content without a browser (``progression.studies.explore``);
``tests/test_explore_browser.py`` drives the page itself."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from progression.model import CohortModel
from progression.studies.cli import main
from progression.studies.explore import ExplorerModel, cohort_figure, findings_html
from tests.conftest import SCENARIOS

MND = str(SCENARIOS / "mnd_population.toml")


def test_the_controls_reach_the_model():
    base = ExplorerModel(scenario_path=MND, patients=10)
    fast = ExplorerModel(scenario_path=MND, patients=10, lmn_speed=0.2, umn_speed=0.1,
                         reinnervation_capacity=3.0, onset_region="bulbar")
    assert fast.scenario.disease.lmn.speed.p["median"] == 0.2
    assert fast.scenario.disease.umn.speed.p["median"] == 0.1
    assert fast.scenario.reinnervation.capacity.p["mean"] == 3.0
    assert (fast.latent.onset_compartment == 0).all()  # bulbar, for every patient
    # Common random numbers: a higher median scales every patient's speed by the same factor.
    ratio = fast.latent.lmn_speed[base.latent.lmn_speed > 0] / base.latent.lmn_speed[
        base.latent.lmn_speed > 0]
    np.testing.assert_allclose(ratio, 0.2 / base.scenario.disease.lmn.speed.p["median"])
    assert "onset regions drawn: bulbar 10" in findings_html(fast, 0)
    assert "onset regions drawn: bulbar 10" not in findings_html(base, 0)


def test_the_explorer_runs_the_engine_and_records_every_patient():
    model = ExplorerModel(scenario_path=MND, patients=8)
    for _ in range(24):
        model.step()
    assert model.steps == 24 and model.month == 24
    frames = model.patient_tables(3)
    assert set(frames["units"]["month"].unique()) == set(range(25))
    assert frames["units"]["patient_id"].unique().to_list() == [3]
    # The explorer's tables are those of a plain cohort of the same scenario and patients.
    plain = CohortModel(model.scenario, np.arange(8), model.arm)
    for _ in range(24):
        plain.step()
    for name, table in plain.results().items():
        assert pa.Table.equals(model.results()[name], table), name
    data = model.datacollector.get_model_vars_dataframe()
    assert len(data) == 25 and data["living"].iloc[0] == 8
    assert data["ALS"].iloc[-1] == sum(p.diagnosis == "ALS" for p in model.agents if p.living)
    assert cohort_figure(model, chosen=3).axes


def test_the_explorer_stops_at_the_end_of_the_scenario():
    model = ExplorerModel(scenario_path=MND, patients=2)
    model.steps_planned = 3
    for _ in range(5):
        model.step()
    assert not model.running and model.step_index == 3


def test_the_explore_command_refuses_what_it_cannot_serve(capsys, tmp_path):
    assert main(["explore", MND, "--patients", "101", "--no-open"]) == 2
    assert "1 to 100" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[cohort]\npatients = -1\n")
    assert main(["explore", str(bad), "--no-open"]) == 2
    assert "bad.toml" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["explore", "--port", "0"])
