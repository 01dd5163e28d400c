"""Correlated patient traits (``[cohort.correlations]``, a Gaussian copula).

What the copula must do: correlate the named parameters' normal scores by the matrix; keep every
marginal, the independence of a patient's several draws of one parameter, common random numbers
and chunk independence; change nothing at all when the matrix is the identity; and refuse a
matrix or a name that cannot be, in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tomlkit
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from progression.distributions import correlate
from progression.runner import run
from progression.scenario import ScenarioError, parse_scenario, patient_parameters
from progression.state import DRAWS_PER_PATIENT, PatientDraws, _spread_draws, draw_latent
from tests.conftest import SCENARIOS
from tests.test_runner import assert_same_tables


def _without_correlations(text: str) -> str:
    """The shipped ALS scenario's text without its own ``[cohort.correlations]``: these tests
    bring theirs (and the "plain" cohort has none)."""
    doc = tomlkit.parse(text)
    del doc["cohort"]["correlations"]
    return tomlkit.dumps(doc)


ALS_TEXT = _without_correlations((SCENARIOS / "als_natural_history.toml").read_text())
PARAMS = ["disease.lmn.speed", "disease.lmn.spread_delay_months", "disease.umn.speed",
          "cohort.age_years"]
MATRIX = [[1.0, -0.6, 0.4, -0.2], [-0.6, 1.0, -0.3, 0.1], [0.4, -0.3, 1.0, 0.0],
          [-0.2, 0.1, 0.0, 1.0]]


def with_correlations(parameters=PARAMS, matrix=MATRIX, patients: int = 20000):
    text = ALS_TEXT + f"\n[cohort.correlations]\nparameters = {parameters!r}\nmatrix = {matrix!r}\n"
    return parse_scenario(text, "corr.toml", {"cohort.patients": patients})


def test_the_named_scores_are_correlated_and_the_marginals_kept() -> None:
    plain = parse_scenario(ALS_TEXT, "als.toml", {"cohort.patients": 20000})
    s = with_correlations()
    ids = np.arange(20000)
    a, b = draw_latent(plain, ids), draw_latent(s, ids)
    # Normal scores of the patient-level traits: log speed and the mean of log delays.
    lmn = np.log(b.lmn_speed[b.lmn_speed > 0])
    assert stats.ks_2samp(a.lmn_speed, b.lmn_speed).pvalue > 0.01  # same marginal
    assert stats.ks_2samp(a.age_years, b.age_years).pvalue > 0.01
    both = (b.lmn_speed > 0) & (b.umn_speed > 0)
    r = np.corrcoef(np.log(b.lmn_speed[both]), np.log(b.umn_speed[both]))[0, 1]
    assert r == pytest.approx(0.4, abs=0.03)
    r_age = np.corrcoef(np.log(b.lmn_speed[b.lmn_speed > 0]), b.age_years[b.lmn_speed > 0])[0, 1]
    assert r_age == pytest.approx(-0.2, abs=0.03)  # age is normal and unclipped here
    assert lmn.size > 10000


def test_a_patients_several_delays_stay_independent_and_follow_the_trait() -> None:
    name = "disease.lmn.contralateral_delay_months"  # drawn once per pair of regions
    s = with_correlations([PARAMS[0], name, *PARAMS[2:]])
    ids = np.arange(20000)
    draws = PatientDraws(s, ids)
    z = draws.correlated[name]
    n = DRAWS_PER_PATIENT[name]
    assert z.shape == (20000, n)
    assert np.std(z) == pytest.approx(1.0, abs=0.01)  # still standard normal
    off_diagonal = np.corrcoef(z.T)[~np.eye(n, dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.03  # edges of one patient independent
    trait = z.mean(axis=1) * np.sqrt(n)
    speed = draws.correlated["disease.lmn.speed"][:, 0]
    assert np.corrcoef(trait, speed)[0, 1] == pytest.approx(-0.6, abs=0.03)


@pytest.mark.parametrize("sigma", [0.0, 0.4])
def test_every_region_delay_follows_the_patients_spread_delay(sigma: float) -> None:
    """The spread delay is one trait per patient: each pair of neighbouring regions takes it
    times a scatter of log SD ``region_delay_sigma``, so each pair's delay carries the declared
    correlation with speed, diluted only by that scatter."""
    s = with_correlations()
    s = parse_scenario(s.text, "corr.toml", {"disease.lmn.region_delay_sigma": sigma})
    ids = np.arange(20000)
    draw = PatientDraws(s, ids)
    lat = draw_latent(s, ids)
    proc = s.disease.lmn
    rostro, *_ = _spread_draws(proc, "disease.lmn", s.cohort.seed, ids, lat.onset_compartment,
                               draw)
    patient = PatientDraws(s, ids)(proc.spread_delay_months, "disease.lmn.spread_delay_months")
    inside = np.all((rostro > 0) & (rostro < 120), axis=1) & (patient < 120)  # unclipped
    scatter = np.log(rostro[inside] / patient[inside, None])
    assert np.std(scatter) == pytest.approx(sigma, abs=0.01)
    log_speed = np.log(lat.lmn_speed)
    sd = proc.spread_delay_months.p["sigma"]
    for e in range(rostro.shape[1]):
        r = np.corrcoef(np.log(rostro[:, e]), log_speed)[0, 1]
        assert r == pytest.approx(-0.6 * sd / np.hypot(sd, sigma), abs=0.03)


def test_the_identity_changes_nothing_to_the_last_bit(tmp_path: Path) -> None:
    names = ["disease.lmn.speed", "disease.lmn.spread_delay_months", "reinnervation.capacity"]
    identity = np.eye(3).tolist()
    s = with_correlations(names, identity, patients=8)
    plain = parse_scenario(ALS_TEXT, "als.toml", {"cohort.patients": 8})
    run(plain, tmp_path / "plain", workers=1, progress=False)
    run(s, tmp_path / "identity", workers=1, progress=False)
    assert_same_tables(tmp_path / "plain", tmp_path / "identity")


def test_correlated_runs_do_not_depend_on_the_chunks(tmp_path: Path) -> None:
    s = with_correlations(patients=9)
    run(s, tmp_path / "a", workers=1, chunk_size=2, progress=False)
    run(s, tmp_path / "b", workers=1, chunk_size=9, progress=False)
    assert_same_tables(tmp_path / "a", tmp_path / "b")
    ids = np.arange(100)
    whole, part = draw_latent(s, ids), draw_latent(s, ids[37:61])
    assert np.array_equal(whole.lmn_onset[37:61], part.lmn_onset)
    assert np.array_equal(whole.umn_speed[37:61], part.umn_speed)
    # One patient at a time, as a replay simulates it: the same bits (a matrix product rounded
    # a single row differently once).
    for i in (0, 13, 99):
        one = draw_latent(s, ids[i : i + 1])
        for name in ("lmn_speed", "umn_speed", "age_years"):
            assert getattr(one, name)[0] == getattr(whole, name)[i], (name, i)
        assert np.array_equal(one.lmn_onset[0], whole.lmn_onset[i])


def test_every_patient_parameter_goes_through_the_copula() -> None:
    """The names validation accepts are exactly the parameters the engine draws."""
    s = with_correlations(patients=5)
    draws = PatientDraws(s, np.arange(5))
    import progression.state as state

    original = state.PatientDraws
    seen: set[str] = set()

    class Recording(original):
        def __call__(self, dist, path, n=1):
            seen.add(path)
            return super().__call__(dist, path, n)

    state.PatientDraws = Recording
    try:
        draw_latent(s, np.arange(5))
    finally:
        state.PatientDraws = original
    assert seen == set(patient_parameters(s))
    assert set(draws.correlated) == set(PARAMS)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=6, max_size=6), st.integers(1, 6))
def test_correlate_reaches_any_valid_matrix(entries, n) -> None:
    """For any positive definite matrix, the patient-level scores have that correlation."""
    a = np.array(entries).reshape(3, 2)
    cov = a @ a.T + 0.2 * np.eye(3)
    d = np.sqrt(np.diag(cov))
    matrix = cov / np.outer(d, d)
    rng = np.random.default_rng(1)
    scores = {k: rng.standard_normal((40000, n if k == "b" else 1)) for k in "abc"}
    out = correlate(scores, matrix)
    traits = np.column_stack([out[k].mean(axis=1) * np.sqrt(out[k].shape[1]) for k in "abc"])
    assert np.allclose(np.corrcoef(traits.T), matrix, atol=0.03)
    assert np.allclose(out["b"].std(axis=0), 1.0, atol=0.03)


@pytest.mark.parametrize(("block", "words"), [
    ('parameters = ["disease.lmn.sped"]\nmatrix = [[1]]',
     "parameters[0]: expected a per-patient parameter (a distribution); closest: "
     "disease.lmn.speed"),
    ('parameters = ["disease.lmn.speed", "disease.umn.speed"]\nmatrix = [[1, 0.5], [0.4, 1]]',
     "matrix: expected a symmetric matrix (row 1, column 2 is 0.5, row 2, column 1 is 0.4)"),
    ('parameters = ["disease.lmn.speed", "disease.umn.speed"]\nmatrix = [[1, 0.5]]',
     "matrix: expected a 2 x 2 matrix"),
    ('parameters = ["disease.lmn.speed", "disease.umn.speed", "cohort.age_years"]\n'
     "matrix = [[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]]",
     "matrix: expected a positive definite matrix"),
    ('parameters = ["disease.lmn.speed", "disease.umn.speed"]\nmatrix = [[1, 1.5], [1.5, 1]]',
     "matrix[0]: expected a value in [-1, 1], got 1.5"),
    ('parameters = ["disease.lmn.speed", "disease.umn.speed"]\nmatrix = [[0.5, 0], [0, 1]]',
     "matrix: expected ones on the diagonal"),
    ('parameters = []\nmatrix = []', "parameters: expected a non-empty list"),
    ('parameters = ["disease.lmn.speed"]\nmatrix = 3', "matrix: expected a list of lists"),
    ('parameters = ["treatments.drug.effect"]\nmatrix = [[1]]', "a per-patient parameter"),
    ('parameters = ["disease.lmn.speed"]\nmatrix = [[1]]\nmatrx = 2', "unknown key"),
])
def test_a_bad_correlation_section_is_one_line(block: str, words: str) -> None:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(ALS_TEXT + "\n[cohort.correlations]\n" + block, "corr.toml")
    message = str(e.value)
    assert "\n" not in message and message.startswith("corr.toml: cohort.correlations.")
    assert words in message, message


def test_scenarios_without_correlations_keep_their_hash() -> None:
    """The section is hashed only when present, so existing runs still resume."""
    from progression.validation import canonical

    s = parse_scenario(ALS_TEXT, "als.toml")
    assert s.cohort.correlations is None and "correlations" not in canonical(s.cohort)
    assert "correlations" in canonical(with_correlations(patients=5).cohort)
