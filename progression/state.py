"""A chunk's state: preallocated arrays (patients x units, ...) and the patients' latent draws.

Everything random about a patient is drawn here, once, keyed by (scenario seed, patient id)
through :mod:`progression.random`, and is the same in every arm (common random numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from progression import random as rnd
from progression.body import COMPARTMENTS, CONTIGUITY, LEVEL_NODES, REGIONS, Body, Muscle
from progression.distributions import Dist, correlate
from progression.processes import hazard, lmn, umn
from progression.scenario import LMN, UMN, Scenario, dist_fields

NO_VISIT = np.inf


@dataclass
class Latent:
    """Per-patient draws that stay fixed through the run ((patients,) unless stated).

    Attributes:
        phenotype: index into the scenario's phenotypes.
        onset_compartment: where degeneration starts (index into COMPARTMENTS).
        age_years: age at the start of degeneration (years).
        lmn_speed, umn_speed: hazard per month of a weight-1 neuron (1/month), 0 if absent.
        lmn_onset: (patients, muscles) LMN process onset in each muscle's pool (months), inf
            if never.
        umn_onset: (patients, compartments) UMN process onset in each tract (months), inf if
            never.
        capacity: c_max (x healthy unit size).
        adoption_rate: 1 / tau_r (1/month).
        symptom_threshold: function fraction below which a region is symptomatic.
        respiratory_threshold: respiratory strength fraction at which breathing fails.
        referral_delay: symptom onset to first visit (months).
        background_death: month of death from other causes (Gompertz), may exceed the run.
    """

    phenotype: np.ndarray
    onset_compartment: np.ndarray
    age_years: np.ndarray
    lmn_speed: np.ndarray
    umn_speed: np.ndarray
    lmn_onset: np.ndarray
    umn_onset: np.ndarray
    capacity: np.ndarray
    adoption_rate: np.ndarray
    symptom_threshold: np.ndarray
    respiratory_threshold: np.ndarray
    referral_delay: np.ndarray
    background_death: np.ndarray


@dataclass
class State:
    """The physiology of a chunk of patients; examinations read it and never change it.

    Attributes:
        fibres: (patients, units) fibres each unit commands now (float32).
        alive: (patients, units) unit alive.
        threshold: (patients, units) scaled LMN death threshold E / w (float32, inf: immune).
        orphans: (patients, muscles, buckets) orphaned fibres by months since orphaned.
        atrophied: (patients, muscles) fibres lost to denervation atrophy.
        lmn_hazard: (patients, muscles) cumulative LMN hazard of a weight-1 neuron.
        umn_hazard: (patients, compartments) cumulative UMN hazard of a weight-1 axon.
        umn_alive: (patients, compartments, axons) corticospinal/bulbar axons alive.
        umn_threshold: (patients, compartments, axons) scaled UMN thresholds.
        umn_integrity: (patients, compartments) fraction of each tract's axons alive, U
            (:func:`progression.processes.umn.integrity` of ``umn_alive``, kept with it).
        umn_release: (patients, compartments) spinal release: the tract loss as the spinal
            circuits below have adapted to it (:func:`progression.processes.umn.release`),
            which spastic tone reads.
        living: (patients,) patient alive.
    """

    fibres: np.ndarray
    alive: np.ndarray
    threshold: np.ndarray
    orphans: np.ndarray
    atrophied: np.ndarray
    lmn_hazard: np.ndarray
    umn_hazard: np.ndarray
    umn_alive: np.ndarray
    umn_threshold: np.ndarray
    umn_integrity: np.ndarray
    umn_release: np.ndarray
    living: np.ndarray

    def fibres_per_muscle(self, starts: np.ndarray) -> np.ndarray:
        """(patients, muscles) fibres of living units."""
        return np.add.reduceat(self.fibres, starts, axis=1, dtype=np.float64)

    def units_alive_per_muscle(self, starts: np.ndarray) -> np.ndarray:
        """(patients, muscles) living units."""
        return np.add.reduceat(self.alive, starts, axis=1, dtype=np.int64)


def buckets(scenario: Scenario) -> int:
    """Orphan age buckets: one per step of the atrophy window."""
    return max(
        1,
        math.ceil(scenario.reinnervation.atrophy_window_months / scenario.time.step_months - 1e-9),
    )


#: Draws per patient of the parameters drawn more than once (one per pair of neighbouring
#: compartments); every other per-patient parameter is drawn once.
DRAWS_PER_PATIENT = {
    f"disease.{proc}.contralateral_delay_months": len(CONTIGUITY) for proc in ("lmn", "umn")
}


class PatientDraws:
    """Every per-patient parameter's values: each from its own keyed stream, and those named in
    ``[cohort.correlations]`` correlated through a Gaussian copula
    (:func:`progression.distributions.correlate`). ``drawn`` records the key paths asked for."""

    def __init__(self, scenario: Scenario, ids: np.ndarray) -> None:
        self.seed, self.ids = scenario.cohort.seed, ids
        self.drawn: set[str] = set()
        self.correlated: dict[str, np.ndarray] = {}
        c = scenario.cohort.correlations
        if c is not None:
            dists = dict(dist_fields(scenario))
            scores = {p: dists[p].normal_scores(self.seed, p, ids, DRAWS_PER_PATIENT.get(p, 1))
                      for p in c.parameters}
            self.correlated = correlate(scores, np.array(c.matrix))

    def __call__(self, dist: Dist, path: str, n: int = 1) -> np.ndarray:
        """(patients,) values of ``dist`` at key path ``path`` ((patients, n) if ``n > 1``)."""
        if n != DRAWS_PER_PATIENT.get(path, 1):
            raise ValueError(f"{path} is drawn {DRAWS_PER_PATIENT.get(path, 1)} times, not {n}")
        self.drawn.add(path)
        z = self.correlated.get(path)
        out = dist.sample(self.seed, path, self.ids, n) if z is None else dist.from_scores(z)
        return out[:, 0] if n == 1 else out


def _choice(u: np.ndarray, shares: list[float]) -> np.ndarray:
    """Index of the category each uniform falls in, by cumulative shares."""
    return np.minimum(np.searchsorted(np.cumsum(shares), u, side="right"), len(shares) - 1)


def _spread_draws(proc: LMN | UMN, path: str, seed: int, ids, origin, draw: PatientDraws):
    """A spreading process's per-patient draws: the rostro-caudal and contralateral delay of
    each contiguity edge, and a non-contiguous jump (the compartment it reaches, or -1, and its
    delay). The rostro-caudal delays scatter around the patient's own spread delay."""
    n_edges = len(CONTIGUITY)
    rostro = hazard.region_delays(
        draw(proc.spread_delay_months, f"{path}.spread_delay_months"),
        rnd.normal(seed, f"{path}.region_delay", ids, n_edges),
        proc.region_delay_sigma,
        proc.spread_delay_months.support(),
    )
    contra = draw(proc.contralateral_delay_months, f"{path}.contralateral_delay_months", n_edges)
    u = rnd.uniform(seed, f"{path}.jump", ids, 3)
    jump = u[:, 0] < proc.noncontiguous_probability
    target = np.minimum((u[:, 1] * len(COMPARTMENTS)).astype(np.int64), len(COMPARTMENTS) - 1)
    jump_to = np.where(jump & (target != origin), target, -1)
    return rostro, contra, jump_to, u[:, 2] * rostro.mean(axis=1) * 2


def _umn_onsets(proc: UMN, scenario, ids, origin, start, draw: PatientDraws) -> np.ndarray:
    """(patients, compartments) UMN onsets: each tract starts a drawn delay after its
    neighbour."""
    rostro, contra, jump_to, jump_delay = _spread_draws(
        proc, "disease.umn", scenario.cohort.seed, ids, origin, draw
    )
    return hazard.spread_onsets(
        origin, start, rostro, contra, jump_to, jump_delay, proc.bulbar_resistance
    )


def focal_levels(muscles: tuple[Muscle, ...], compartment: int) -> tuple[int, ...]:
    """Level nodes where focal LMN degeneration may start in ``compartment``: the span of the
    levels of its muscles that serve more than breathing (respiratory onset is rare, and the
    region of first symptoms is a limb or bulbar region)."""
    own = [m.levels for m in muscles if m.compartment == compartment
           and set(m.functions) != {"respiratory"}]
    nodes = [i for lv in own for i in lv] or [
        i for i, (c, _) in enumerate(LEVEL_NODES) if c == compartment
    ]
    return tuple(range(min(nodes), max(nodes) + 1))


def _lmn_onsets(proc: LMN, scenario, ids, origin, start, draw: PatientDraws) -> np.ndarray:
    """(patients, muscles) LMN onsets: all at ``start`` unless the pattern spreads; a spreading
    process starts at a drawn level of the onset compartment and reaches each muscle's pool
    when it reaches the first of the muscle's levels (:func:`hazard.level_onsets`)."""
    muscles = scenario.muscles()
    if not lmn.PATTERNS[proc.pattern].spreads:
        return np.repeat(start[:, None], len(muscles), axis=1)
    path, seed = "disease.lmn", scenario.cohort.seed
    rostro, contra, jump_to, jump_delay = _spread_draws(proc, path, seed, ids, origin, draw)
    level = draw(proc.level_delay_months, f"{path}.level_delay_months")
    u = rnd.uniform(seed, f"{path}.focus", ids, 2)
    node_origin = np.empty(len(ids), dtype=np.int64)
    node_jump = np.full(len(ids), -1, dtype=np.int64)
    for c in range(len(COMPARTMENTS)):
        levels = np.array(focal_levels(muscles, c))
        pick = levels[np.minimum((u[:, 0] * len(levels)).astype(np.int64), len(levels) - 1)]
        node_origin = np.where(origin == c, pick, node_origin)
        pick = levels[np.minimum((u[:, 1] * len(levels)).astype(np.int64), len(levels) - 1)]
        node_jump = np.where(jump_to == c, pick, node_jump)
    nodes = hazard.level_onsets(
        node_origin, start, rostro, contra, level, node_jump, jump_delay, proc.bulbar_resistance
    )
    return np.stack([nodes[:, list(m.levels)].min(axis=1) for m in muscles], axis=1)


def draw_latent(scenario: Scenario, ids: np.ndarray) -> Latent:
    """Every per-patient draw that does not depend on the simulation (see :class:`Latent`)."""
    seed = scenario.cohort.seed
    draw = PatientDraws(scenario, ids)
    names = list(scenario.phenotypes)
    u = rnd.uniform(seed, "cohort", ids, 3)
    phen = _choice(u[:, 0], [scenario.phenotypes[n].share for n in names])
    regions = list(scenario.cohort.onset_region)
    region = np.array(regions)[_choice(u[:, 1], [scenario.cohort.onset_region[r] for r in regions])]
    side = np.where(u[:, 2] < 0.5, "left", "right")
    origin = np.array(
        [
            COMPARTMENTS.index((r, s if r in ("cervical", "lumbosacral") else "midline"))
            for r, s in zip(region, side, strict=True)
        ],
        dtype=np.int64,
    )
    factor = np.array([scenario.phenotypes[n].speed_factor for n in names])[phen]
    has = {
        proc: np.array([proc in scenario.phenotypes[n].processes for n in names])[phen]
        for proc in ("lmn", "umn")
    }
    n = len(ids)
    d = scenario.disease
    start = {}
    speed = {}
    for proc, spec in (("lmn", d.lmn), ("umn", d.umn)):
        if spec is None:
            start[proc] = np.full(n, np.inf)
            speed[proc] = np.zeros(n)
            continue
        s0 = draw(spec.onset_month, f"disease.{proc}.onset_month")
        start[proc] = np.where(has[proc], s0, np.inf)
        k = draw(spec.speed, f"disease.{proc}.speed") * factor
        speed[proc] = np.where(has[proc], k, 0.0)
    shift = np.minimum(start["lmn"], start["umn"])  # month 0 = start of degeneration
    shift = np.where(np.isfinite(shift), shift, 0.0)
    lmn_onset = (
        _lmn_onsets(d.lmn, scenario, ids, origin, start["lmn"] - shift, draw)
        if d.lmn is not None else np.full((n, len(scenario.muscles())), np.inf)
    )
    umn_onset = (
        _umn_onsets(d.umn, scenario, ids, origin, start["umn"] - shift, draw)
        if d.umn is not None else np.full((n, len(COMPARTMENTS)), np.inf)
    )
    age = draw(scenario.cohort.age_years, "cohort.age_years")
    r = scenario.reinnervation
    return Latent(
        phenotype=phen,
        onset_compartment=origin,
        age_years=age,
        lmn_speed=speed["lmn"],
        umn_speed=speed["umn"],
        lmn_onset=lmn_onset,
        umn_onset=umn_onset,
        capacity=draw(r.capacity, "reinnervation.capacity"),
        adoption_rate=1.0 / draw(r.time_constant_months, "reinnervation.time_constant_months"),
        symptom_threshold=draw(scenario.symptoms.function_threshold, "symptoms.function_threshold"),
        respiratory_threshold=draw(
            scenario.respiration.failure_threshold, "respiration.failure_threshold"
        ),
        referral_delay=draw(scenario.visits.referral_delay_months, "visits.referral_delay_months"),
        background_death=background_death(scenario, ids, age),
    )


def background_death(scenario: Scenario, ids: np.ndarray, age_years: np.ndarray) -> np.ndarray:
    """Month of death from other causes: Gompertz ``mu(x) = a exp(b (x - 60))`` per year,
    solved exactly for an Exp(1) threshold from age ``age_years`` on."""
    a = scenario.mortality.gompertz_a_per_year
    b = scenario.mortality.gompertz_b_per_year
    e = rnd.exponential(scenario.cohort.seed, "background_death", ids, 1)[:, 0]
    if a == 0:
        return np.full(len(ids), np.inf)
    level = a * np.exp(b * (age_years - 60.0))
    years = np.log1p(e * b / level) / b if b > 0 else e / level
    return 12.0 * years


def initial_state(scenario: Scenario, body: Body, ids: np.ndarray) -> State:
    """Healthy muscles and tracts with every neuron's death threshold drawn once."""
    seed = scenario.cohort.seed
    n = len(ids)
    d = scenario.disease
    if d.lmn is not None:
        w = lmn.PATTERNS[d.lmn.pattern].weight(d.lmn, body)
    else:
        w = np.zeros(body.n_units)
    e = rnd.exponential(seed, "lmn", ids, body.n_units)
    axons = d.umn.axons if d.umn is not None else 1
    if d.umn is not None:
        wu = umn.weight(umn.velocities(axons), d.umn.velocity_exponent)
    else:
        wu = np.zeros(axons)
    eu = rnd.exponential(seed, "umn", ids, len(COMPARTMENTS) * axons).reshape(
        n, len(COMPARTMENTS), axons
    )
    return State(
        fibres=np.broadcast_to(body.base, (n, body.n_units)).copy(),
        alive=np.ones((n, body.n_units), dtype=bool),
        threshold=lmn.scaled_thresholds(e, w[None, :]),
        orphans=np.zeros((n, body.n_muscles, buckets(scenario)), dtype=np.float32),
        atrophied=np.zeros((n, body.n_muscles), dtype=np.float64),
        lmn_hazard=np.zeros((n, body.n_muscles)),
        umn_hazard=np.zeros((n, len(COMPARTMENTS))),
        umn_alive=np.ones((n, len(COMPARTMENTS), axons), dtype=bool),
        umn_threshold=lmn.scaled_thresholds(eu, wu[None, None, :]),
        umn_integrity=np.ones((n, len(COMPARTMENTS))),
        umn_release=np.zeros((n, len(COMPARTMENTS))),
        living=np.ones(n, dtype=bool),
    )


__all__ = ["REGIONS", "Latent", "State", "draw_latent", "initial_state", "NO_VISIT"]
