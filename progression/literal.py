"""The literal reference model: one Mesa agent per motor unit and per corticospinal axon.

MODEL.md sections 2-4 and 8 written as plain Python loops over agents, to be read: each month
neurons whose own cumulative hazard passes their Exp(1) threshold die, surviving units adopt the
orphaned fibres of their muscle, fibres left unadopted for the atrophy window waste away, tract
axons die by the same rule, a region whose strength falls becomes symptomatic, and breathing fails.

It is the executable specification of the fast engine (:mod:`progression.model`): it reads the same
:class:`~progression.scenario.Scenario` and reuses the per-patient latent draws
(:func:`progression.state.draw_latent`: speeds, onsets, capacities, thresholds of function), so that
parameters mean the same thing, but it draws every neuron's death threshold from its own numpy
Generator seeded by ``SeedSequence(seed, spawn_key=(patient_id,))`` and shares no process code with
the engine. ``tests/test_literal.py`` checks that the two agree in distribution.

Conventions shared with the engine (and with MODEL.md), step ``[t0, t1)`` of ``dt`` months:

* order within a step: the engine's (:attr:`progression.model.CohortModel.PHASES`), except that
  tract axons die here between the LMN deaths and reinnervation rather than before atrophy
  (within a step, neither depends on the other);
* a neuron's cumulative hazard ``H_i = w_i * k_p * (months its compartment has been affected)``
  is evaluated at ``t1``; it dies in this step if ``H_i(t1) > E_i``; its sickness is ``H_i / E_i``;
* orphans are tagged with the start ``t0`` of the step in which they were orphaned and atrophy at
  the start of the first step whose start is at least ``W`` months later;
* a muscle's orphan pool is offered at ``1 - exp(-dt / tau_r)`` per step; a unit's reach this
  step is ``spare capacity * (1 - sickness) ** q``; units adopt in proportion to their reach and
  never beyond it;
* a treatment acts from the step after the visit (or month) that starts it.
"""

from __future__ import annotations

import math
import time

import mesa
import numpy as np

from progression.agents import AgentIds
from progression.body import COMPARTMENTS, REGIONS, Muscle, unit_sizes
from progression.scenario import Scenario
from progression.state import Latent, draw_latent

#: Share of inspiratory strength: each hemidiaphragm a third, the intercostals a third.
RESPIRATORY_WEIGHTS = {"diaphragm": 1.0 / 3.0, "intercostals": 1.0 / 3.0}

#: Conduction velocities of a tract's axon sample span 20-75 m/s (fast axons 50-70 m/s).
VELOCITY_RANGE_M_S = (20.0, 75.0)

#: Tolerance for comparing months (steps may be fractions of a month).
EPS = 1e-9


def patient_rng(seed: int, patient_id: int) -> np.random.Generator:
    """The literal model's own random stream of one patient (independent of the engine's)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(patient_id),)))


def exposure(t0: float, t1: float, onset: float) -> float:
    """Months of the step ``[t0, t1)`` that fall after ``onset`` (g(t) = 1 once started)."""
    return min(max(t1 - onset, 0.0), t1 - t0)


def lmn_weight(scenario: Scenario, muscle: Muscle, size: float) -> float:
    """Relative LMN hazard ``w_i`` of one neuron of ``muscle`` whose unit has ``size`` times the
    muscle's mean unit size (MODEL.md section 2), for the scenario's LMN pattern."""
    lmn = scenario.disease.lmn
    if lmn is None:
        return 0.0
    by_size = size**lmn.size_exponent  # large, fast-fatigable units die first
    if lmn.pattern == "focal":  # ALS: muscle vulnerability (split hand, distal before proximal)
        return muscle.vulnerability * by_size
    if lmn.pattern == "segmental":  # anterior horn disease of some segments: myotomal weakness
        hit = sum(seg in lmn.segments for seg in muscle.segments)
        return hit / len(muscle.segments) * by_size
    if lmn.pattern == "length_dependent":  # axonal: the longest axons first
        length = muscle.axon_length_cm / lmn.reference_length_cm
        return length**lmn.length_exponent * by_size
    raise ValueError(f"unknown LMN pattern {lmn.pattern!r}")


class MotorUnit(mesa.Agent):
    """One lower motor neuron and the muscle fibres it commands.

    Attributes:
        muscle: the :class:`MuscleState` it belongs to.
        base: healthy fibres of the unit (Fuglevand sizes).
        capacity: the most fibres it may command, ``c_max * base``.
        weight: its relative hazard ``w_i``.
        threshold: its death threshold ``E_i ~ Exp(1)``, drawn once.
        fibres: fibres it commands now.
        alive: whether the neuron lives.
        sickness: ``H_i / E_i`` in [0, 1): how far along its road to death.
    """

    _ids = AgentIds()  # mesa's own counters would keep every model alive

    def __init__(self, model, muscle, base, capacity, weight, threshold) -> None:
        super().__init__(model)
        self.muscle = muscle
        self.base = base
        self.capacity = capacity
        self.weight = weight
        self.threshold = threshold
        self.fibres = base
        self.alive = True
        self.sickness = 0.0

    def face_hazard(self, compartment_hazard: float) -> float:
        """Die if the neuron's cumulative hazard has passed its threshold, else update sickness.

        Args:
            compartment_hazard: cumulative hazard of a weight-1 neuron of its compartment.

        Returns:
            The fibres it leaves orphaned (0 if it survives).
        """
        cumulative = self.weight * compartment_hazard
        if cumulative > self.threshold:
            orphaned, self.fibres = self.fibres, 0.0
            self.alive = False
            self.sickness = 0.0
            return orphaned
        self.sickness = cumulative / self.threshold
        return 0.0

    def reach(self, q: float) -> float:
        """Fibres the unit can take this step: spare capacity times health ``(1 - s) ** q``."""
        return max(self.capacity - self.fibres, 0.0) * (1.0 - self.sickness) ** q


class UpperMotorNeuron(mesa.Agent):
    """One corticospinal or corticobulbar axon of a tract sample.

    Attributes:
        velocity: conduction velocity (m/s).
        weight: relative UMN hazard, fastest axons most vulnerable.
        threshold: ``E_a ~ Exp(1)``, drawn once.
        alive: whether the axon lives.
    """

    _ids = AgentIds()  # mesa's own counters would keep every model alive

    def __init__(self, model, velocity, weight, threshold) -> None:
        super().__init__(model)
        self.velocity = velocity
        self.weight = weight
        self.threshold = threshold
        self.alive = True

    def face_hazard(self, tract_hazard: float) -> None:
        """Die once the axon's cumulative hazard passes its threshold."""
        if self.alive and self.weight * tract_hazard > self.threshold:
            self.alive = False


class MuscleState:
    """One muscle of one patient: its units and its pool of orphaned fibres.

    Attributes:
        muscle: the body map entry.
        units: its :class:`MotorUnit` agents, smallest first.
        healthy: healthy fibre total.
        orphans: ``[month orphaned, fibres]`` cohorts waiting to be adopted.
        atrophied: fibres lost to denervation atrophy.
    """

    def __init__(self, muscle: Muscle) -> None:
        self.muscle = muscle
        self.units: list[MotorUnit] = []
        self.healthy = 0.0
        self.orphans: list[list[float]] = []
        self.atrophied = 0.0

    @property
    def living_fibres(self) -> float:
        return sum(u.fibres for u in self.units if u.alive)

    @property
    def units_alive(self) -> int:
        return sum(u.alive for u in self.units)

    @property
    def orphan_fibres(self) -> float:
        return sum(fibres for _, fibres in self.orphans)

    def atrophy(self, now: float, window: float) -> None:
        """Orphans unadopted for the whole atrophy window are lost for good."""
        keep = []
        for month, fibres in self.orphans:
            if now - month >= window - EPS:
                self.atrophied += fibres
            else:
                keep.append([month, fibres])
        self.orphans = keep

    def reinnervate(self, rate: float, dt: float, q: float) -> None:
        """Surviving units adopt a share ``1 - exp(-rate * dt)`` of the pool, in proportion to
        their reach, never beyond it; every age cohort of the pool shrinks alike."""
        pool = self.orphan_fibres
        if pool <= 0.0:
            return
        reach = [(u, u.reach(q)) for u in self.units if u.alive]
        room = sum(r for _, r in reach)
        if room <= 0.0:
            return
        taken = min(pool * (1.0 - math.exp(-rate * dt)), room)
        for unit, r in reach:
            unit.fibres += r * taken / room
        for cohort in self.orphans:
            cohort[1] *= 1.0 - taken / pool


class Patient(mesa.Agent):
    """One patient: latent parameters, muscles with their units, tracts with their axons.

    Attributes:
        patient_id: identity in the cohort (keys its randomness).
        row: its index in the cohort's latent arrays.
        muscles: one :class:`MuscleState` per muscle of the scenario.
        tracts: per compartment, the list of its :class:`UpperMotorNeuron` agents (empty if the
            scenario has no UMN process).
        lmn_hazard: per muscle, cumulative LMN hazard of a weight-1 neuron.
        umn_hazard: per compartment, cumulative UMN hazard of a weight-1 axon.
        living: whether the patient is alive; a dead patient's timeline stops.
        region_onset: month each region became symptomatic (inf: not yet).
        symptom_onset, death_month: months (inf: not yet); death_cause: why.
    """

    _ids = AgentIds()  # mesa's own counters would keep every model alive

    def __init__(self, model: LiteralCohort, row: int, patient_id: int) -> None:
        super().__init__(model)
        s = model.scenario
        lat = model.latent
        self.row = row
        self.patient_id = int(patient_id)
        self.lmn_speed = float(lat.lmn_speed[row])
        self.umn_speed = float(lat.umn_speed[row])
        self.lmn_onset = [float(x) for x in lat.lmn_onset[row]]
        self.umn_onset = [float(x) for x in lat.umn_onset[row]]
        self.adoption_rate = float(lat.adoption_rate[row])
        self.symptom_threshold = float(lat.symptom_threshold[row])
        self.respiratory_threshold = float(lat.respiratory_threshold[row])
        self.referral_delay = float(lat.referral_delay[row])
        self.background_death = float(lat.background_death[row])
        rng = patient_rng(s.cohort.seed, patient_id)
        capacity = float(lat.capacity[row])
        self.muscles = []
        for m in s.muscles():
            ms = MuscleState(m)
            for base in unit_sizes(m):
                w = lmn_weight(s, m, base / m.innervation_ratio)
                ms.units.append(
                    MotorUnit(model, ms, float(base), capacity * base, w, rng.exponential())
                )
            ms.healthy = sum(u.base for u in ms.units)
            self.muscles.append(ms)
        self.tracts: list[list[UpperMotorNeuron]] = [[] for _ in COMPARTMENTS]
        umn = s.disease.umn
        if umn is not None:
            lo, hi = VELOCITY_RANGE_M_S
            v = [lo + (hi - lo) * (a + 0.5) / umn.axons for a in range(umn.axons)]
            mean_v = sum(v) / len(v)
            for tract in self.tracts:
                for va in v:
                    w = (va / mean_v) ** umn.velocity_exponent
                    tract.append(UpperMotorNeuron(model, va, w, rng.exponential()))
        self.lmn_hazard = [0.0] * len(self.lmn_onset)
        self.umn_hazard = [0.0] * len(COMPARTMENTS)
        self.living = True
        self.treated = False
        self.region_onset = [math.inf] * len(REGIONS)
        self.symptom_onset = math.inf
        self.death_month = math.inf
        self.death_cause = ""
        self.first_visit = math.inf
        self.next_visit = math.inf
        self.function = self.compartment_function()
        self.respiration = self.respiratory_strength()

    # -- the month ----------------------------------------------------------------------------

    def step(self) -> None:
        """One step ``[t0, t1)`` of this patient, in the engine's order (module docstring)."""
        if not self.living:
            return
        model = self.model
        t0, t1, dt = model.month, model.month + model.dt, model.dt
        s = model.scenario
        treatment = model.treatment if self.treated else None
        lmn_x = treatment.lmn_speed if treatment else 1.0
        umn_x = treatment.umn_speed if treatment else 1.0
        adopt_x = treatment.reinnervation_rate if treatment else 1.0

        # 1. atrophy: orphans that waited the whole window are lost
        for ms in self.muscles:
            ms.atrophy(t0, s.reinnervation.atrophy_window_months)

        # 2. LMN death: add each pool's hazard, then every neuron faces its own threshold
        for m, onset in enumerate(self.lmn_onset):
            self.lmn_hazard[m] += self.lmn_speed * lmn_x * exposure(t0, t1, onset)
        for m, ms in enumerate(self.muscles):
            hazard = self.lmn_hazard[m]
            for unit in ms.units:
                if unit.alive:
                    orphaned = unit.face_hazard(hazard)
                    if orphaned > 0.0:
                        ms.orphans.append([t0, orphaned])

        # 3. UMN loss: the same threshold rule for each tract's axons
        for c, tract in enumerate(self.tracts):
            self.umn_hazard[c] += self.umn_speed * umn_x * exposure(t0, t1, self.umn_onset[c])
            for axon in tract:
                axon.face_hazard(self.umn_hazard[c])

        # 4. reinnervation: survivors adopt orphans, sick ones less
        for ms in self.muscles:
            ms.reinnervate(self.adoption_rate * adopt_x, dt, s.reinnervation.sick_exponent)

        # 5. symptoms: a compartment's function falling below the threshold starts its region
        function = self.compartment_function()
        thr = self.symptom_threshold
        for c, (region, _side) in enumerate(COMPARTMENTS):
            f0, f1 = self.function[c], function[c]
            if f0 >= thr > f1:
                when = t0 + dt * min(max((f0 - thr) / (f0 - f1), 0.0), 1.0)
                r = REGIONS.index(region)
                self.region_onset[r] = min(self.region_onset[r], when)
        self.function = function
        if math.isinf(self.symptom_onset) and min(self.region_onset) < math.inf:
            self.symptom_onset = min(self.region_onset)
            if s.visits.start == "symptoms":
                due = math.ceil(self.symptom_onset + self.referral_delay - EPS)
                self.next_visit = max(due, math.ceil(self.symptom_onset - EPS))

        # 6. death: breathing fails (strength crossing the threshold), or another cause
        r0, r1 = self.respiration, self.respiratory_strength()
        self.respiration = r1
        thr = self.respiratory_threshold
        respiratory = math.inf
        if r1 < thr:
            frac = (r0 - thr) / (r0 - r1) if r0 > r1 else 1.0
            respiratory = t0 + dt * min(max(frac, 0.0), 1.0)
        other = self.background_death if self.background_death <= t1 else math.inf
        if min(respiratory, other) < math.inf:
            self.living = False
            if other < math.inf and (respiratory == math.inf or other < respiratory):
                self.death_month, self.death_cause = other, "other causes"
            else:
                self.death_month, self.death_cause = respiratory, "respiratory failure"
            return

        # 7. visits (only their effect on treatment: examinations are not modelled here)
        self.visit(t1)

    def visit(self, month: float) -> None:
        """Keep the visit schedule and start a treatment that begins at a visit or a month."""
        treatment = self.model.treatment
        if treatment is not None and treatment.start != "first_visit":
            self.treated = month + EPS >= float(treatment.start)
        if self.next_visit > month + EPS:
            return
        self.first_visit = min(self.first_visit, month)
        if treatment is not None and treatment.start == "first_visit":
            self.treated = True
        self.next_visit += self.model.scenario.visits.interval_months

    # -- what the patient's state says ------------------------------------------------------------

    def integrity(self, compartment: int) -> float:
        """UMN tract integrity ``U``: the fraction of the tract's axons alive (1 if none)."""
        tract = self.tracts[compartment]
        return sum(a.alive for a in tract) / len(tract) if tract else 1.0

    def strength(self, ms: MuscleState) -> float:
        """Force over healthy force: living fibres times the UMN drive ``1 - a_u (1 - U) ** p``."""
        umn = self.model.scenario.disease.umn
        a_u, p = (umn.drive_weakness, umn.drive_exponent) if umn is not None else (0.0, 1.0)
        u = self.integrity(ms.muscle.compartment)
        return ms.living_fibres / ms.healthy * (1.0 - a_u * (1.0 - u) ** p)

    def compartment_function(self) -> list[float]:
        """Per compartment, the mean strength of its muscles (1 if it has none)."""
        out = []
        for c in range(len(COMPARTMENTS)):
            mine = [self.strength(ms) for ms in self.muscles if ms.muscle.compartment == c]
            out.append(sum(mine) / len(mine) if mine else 1.0)
        return out

    def respiratory_strength(self) -> float:
        """Inspiratory strength over healthy: weighted diaphragm and intercostals (1 if none),
        and the bulbar muscles with ``respiration.upper_airway_weight`` (upper airway)."""
        total = weight = 0.0
        for ms in self.muscles:
            w = RESPIRATORY_WEIGHTS.get(ms.muscle.name, 0.0)
            if w:
                total += w * self.strength(ms)
                weight += w
        pump = total / weight if weight else 1.0
        airway = self.model.scenario.respiration.upper_airway_weight
        bulbar = [self.strength(ms) for ms in self.muscles if ms.muscle.region == "bulbar"]
        if airway > 0 and bulbar:
            return (1.0 - airway) * pump + airway * sum(bulbar) / len(bulbar)
        return pump


class LiteralCohort(mesa.Model):
    """Patients of one arm, every motor unit and tract axon an agent of its own.

    Args:
        scenario: the validated scenario (the same object the engine runs).
        patient_ids: identities of the patients to simulate.
        arm: the arm (its treatment, if any, applies from its start).

    Attributes:
        month: months since the start of degeneration.
        latent: per-patient draws shared with the engine (:func:`draw_latent`).
        unit_steps: motor units of living patients summed over the steps simulated.
    """

    def __init__(self, scenario: Scenario, patient_ids, arm: str | None = None) -> None:
        super().__init__(seed=scenario.cohort.seed)
        self.scenario = scenario
        self.arm = arm if arm is not None else scenario.arm_names[0]
        self.treatment = scenario.treatment_of(self.arm)
        self.dt = scenario.time.step_months
        self.month = 0.0
        self.unit_steps = 0
        self.ids = np.asarray(patient_ids, dtype=np.int64)
        self.latent: Latent = draw_latent(scenario, self.ids)
        self.patients = [Patient(self, row, pid) for row, pid in enumerate(self.ids)]
        self.n_units = sum(m.units for m in scenario.muscles())
        if scenario.visits.start == "degeneration":
            for p in self.patients:
                p.next_visit = 0.0
                p.visit(0.0)

    def step(self) -> None:
        """One time step for every living patient (patients are independent of each other)."""
        self.unit_steps += sum(p.living for p in self.patients) * self.n_units
        for patient in self.patients:
            patient.step()
        self.month = self.steps * self.dt  # mesa counts steps; no drift from summing dt

    def run(self, months: float | None = None) -> None:
        """Step for ``months`` (default: the scenario's duration) or until everyone has died."""
        months = self.scenario.time.duration_months if months is None else months
        for _ in range(int(math.ceil(months / self.dt - EPS))):
            if not any(p.living for p in self.patients):
                break
            self.step()

    # -- read-outs, as (patients, muscles) or (patients, compartments) arrays ------------------

    def units_alive(self) -> np.ndarray:
        """(patients, muscles) living motor units."""
        return np.array([[ms.units_alive for ms in p.muscles] for p in self.patients])

    def fibres(self) -> np.ndarray:
        """(patients, muscles) fibres of living units."""
        return np.array([[ms.living_fibres for ms in p.muscles] for p in self.patients])

    def orphans(self) -> np.ndarray:
        """(patients, muscles) orphaned fibres waiting for adoption."""
        return np.array([[ms.orphan_fibres for ms in p.muscles] for p in self.patients])

    def atrophied(self) -> np.ndarray:
        """(patients, muscles) fibres lost to atrophy."""
        return np.array([[ms.atrophied for ms in p.muscles] for p in self.patients])

    def integrity(self) -> np.ndarray:
        """(patients, compartments) UMN tract integrity."""
        n = len(COMPARTMENTS)
        return np.array([[p.integrity(c) for c in range(n)] for p in self.patients])

    def living(self) -> np.ndarray:
        """(patients,) patient alive."""
        return np.array([p.living for p in self.patients])

    def symptom_onset(self) -> np.ndarray:
        """(patients,) month of symptom onset (inf: none yet)."""
        return np.array([p.symptom_onset for p in self.patients])

    def death_month(self) -> np.ndarray:
        """(patients,) month of death (inf: alive)."""
        return np.array([p.death_month for p in self.patients])


def time_literal(scenario: Scenario, patients: int, months: float | None = None) -> dict:
    """Time the literal model on ``patients`` patients (ids 0..patients-1) of the first arm.

    Motor-unit-steps count the units of living patients in each simulated month, as for the
    engine (CONVENTIONS.md, Benchmarks); set-up (creating the agents) is timed separately.

    Returns:
        ``unit_steps_per_second`` (stepping only), ``unit_steps``, ``setup_seconds`` and
        ``step_seconds``.
    """
    t = time.perf_counter()
    cohort = LiteralCohort(scenario, np.arange(patients))
    setup = time.perf_counter() - t
    t = time.perf_counter()
    cohort.run(months)
    elapsed = time.perf_counter() - t
    return {
        "unit_steps_per_second": cohort.unit_steps / elapsed if elapsed > 0 else math.inf,
        "unit_steps": float(cohort.unit_steps),
        "setup_seconds": setup,
        "step_seconds": elapsed,
    }


def unit_steps_per_second(scenario: Scenario, patients: int, months: float | None = None) -> float:
    """Motor-unit-steps per second of the literal model, stepping only (:func:`time_literal`)."""
    return time_literal(scenario, patients, months)["unit_steps_per_second"]
