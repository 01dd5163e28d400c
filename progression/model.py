"""The cohort model: a chunk of patients as a Mesa model (:class:`CohortModel`), its motor units
as arrays.

A step runs the phases of :attr:`CohortModel.PHASES` in order: that tuple is the one statement
of the order of the physiology within a step.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import mesa
import numpy as np
import pyarrow as pa

from progression import kernel, tables
from progression import random as rnd
from progression import trial as trial_rules
from progression.agents import CohortPatient
from progression.body import COMPARTMENTS, REGIONS, Body
from progression.exam import Examiner
from progression.processes import hazard, lmn, reinnervation, umn
from progression.recorder import UnitRecorder
from progression.scenario import Scenario
from progression.state import NO_VISIT, Latent, State, draw_latent, initial_state

#: Share of inspiratory strength: two hemidiaphragms about two thirds, intercostals a third (TC).
RESPIRATORY_WEIGHTS = {"diaphragm": 1.0 / 3.0, "intercostals": 1.0 / 3.0}


class CohortModel(mesa.Model):
    """The Mesa model of a cohort: a chunk of patients in one arm, unit state as (patients x units)
    arrays.

    Args:
        scenario: the validated scenario.
        patient_ids: (patients,) identities of the chunk's patients.
        arm: the arm simulated (its treatment, if any, applies from its start).
        engine: ``kernel`` (fused numba pass, the default) or ``numpy`` (the same phases as
            whole-array operations; the reference the kernel is tested against).
        recorder: records chosen patients' motor units and tracts every month
            (:class:`~progression.recorder.UnitRecorder`); None (the default) records nothing.

    Every patient is also a Mesa agent (:class:`~progression.agents.CohortPatient`, in
    ``self.agents``) whose attributes read these arrays, so that AgentSet selection, grouping
    and ``mesa.DataCollector`` work on the cohort; the agents hold no state of their own.

    Attributes:
        month: months since the start of degeneration (during a step: the step's end).
        timings: CPU seconds spent in each phase of :meth:`step` (:attr:`PHASES`).
        unit_steps: motor units of living patients summed over the steps simulated.
        function: (patients, compartments) compartment function at the last step's end.
        respiration: (patients,) inspiratory strength at the last step's end.
        respiration_now: (patients,) inspiratory strength at this step's end, from the symptoms
            phase on (the death phase compares it with ``respiration``).
    """

    def __init__(
        self,
        scenario: Scenario,
        patient_ids: np.ndarray,
        arm: str,
        engine: str = "kernel",
        recorder: UnitRecorder | None = None,
    ) -> None:
        super().__init__(seed=scenario.cohort.seed)
        self.scenario = scenario
        self.arm = arm
        self.ids = np.asarray(patient_ids, dtype=np.int64)
        self.body = Body.from_muscles(scenario.muscles())
        self.dt = scenario.time.step_months
        self.month = 0.0
        self.step_index = 0
        self.timings: dict[str, float] = {}
        self.unit_steps = 0
        self.latent: Latent = draw_latent(scenario, self.ids)
        self.state: State = initial_state(scenario, self.body, self.ids)
        self.treatment = scenario.treatment_of(arm)
        n = len(self.ids)
        self.treated = np.zeros(n, dtype=bool)
        self.healthy = self.body.healthy_fibres
        self.starts = self.body.start[:-1]
        self.capacity_scale = self.latent.capacity.astype(np.float32)[:, None]
        self.engine = engine
        self.fibres_sum = self.state.fibres_per_muscle(self.starts)
        self.alive_count = self.state.units_alive_per_muscle(self.starts)
        self.region_onset = np.full((n, len(REGIONS)), np.inf)
        self.symptom_onset = np.full(n, np.inf)
        self.function = self.compartment_function()
        self.respiration = self.respiratory_strength()
        self.respiration_now = self.respiration
        self.next_visit = np.full(n, NO_VISIT)
        self.first_visit = np.full(n, np.inf)
        self.death_month = np.full(n, np.inf)
        self.death_cause = np.full(n, "", dtype=object)
        self.events: list[dict[str, np.ndarray]] = []
        self.enrolment = np.full(n, np.inf)  # month of randomisation (inf: never enrolled)
        self.screenings = np.zeros(n, dtype=np.int16)
        trial = scenario.trial
        self.dropout_after = trial_rules.dropout_after(
            rnd.exponential(scenario.cohort.seed, "trial:dropout", self.ids, 1)[:, 0],
            trial.dropout_per_month if trial else 0.0,
        )
        self.examiner = Examiner(scenario, self.body, self.ids)
        self.recorder = recorder
        if recorder is not None:
            recorder.record(self)
        CohortPatient.create_cohort(self)
        if scenario.visits.start == "degeneration":
            self.next_visit[:] = 0.0
            self.visit()

    # -- the step ---------------------------------------------------------------------------

    #: The phases of a step, in the order the physiology runs: the one statement of that order
    #: (the module docstring, the README and the literal model refer here). Each entry is the
    #: phase's name in :attr:`timings` and its method, which takes the step ``[t0, t1)``.
    PHASES = (
        ("hazards", "accrue_hazards"),  # each compartment's LMN and UMN hazard accrues
        ("umn_loss", "umn_loss"),  # tract axons past their threshold die, fastest first
        ("motor_units", "motor_units"),  # atrophy, LMN death, then reinnervation by survivors
        ("symptoms", "symptoms"),  # a region whose function falls is symptomatic
        ("death", "deaths"),  # breathing fails, or another cause ends the timeline
        ("examination", "examination"),  # scheduled visits read the state, never change it
    )

    def step(self) -> None:
        """One time step ``[t0, t1)`` of ``time.step_months``: the :attr:`PHASES` in order."""
        self.step_index += 1
        t0, t1 = self.month, self.step_index * self.dt  # no drift from summing dt
        self.unit_steps += int(self.state.living.sum()) * self.body.n_units
        if self.treatment is not None and not isinstance(self.treatment.start, str):
            self.treated |= t0 + 1e-9 >= self.treatment.start  # a fixed start month
        self.month = t1  # what a phase needs of the step's start it takes as t0
        for name, method in self.PHASES:
            with self.timer(name):
                getattr(self, method)(t0, t1)
        if self.recorder is not None:
            self.recorder.record(self)

    def run(self) -> None:
        """Step until the scenario's duration or until every patient has died."""
        n_steps = int(np.ceil(self.scenario.time.duration_months / self.dt - 1e-9))
        for _ in range(n_steps):
            if not self.state.living.any():
                break
            self.step()

    @contextmanager
    def timer(self, phase: str):
        t = time.perf_counter()
        yield
        self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - t

    # -- processes ----------------------------------------------------------------------------

    def multiplier(self, attr: str) -> np.ndarray:
        """(patients,) treatment multiplier of a rate (1 where untreated), 0 for the dead."""
        m = np.ones(len(self.ids))
        if self.treatment is not None:
            m[self.treated] = getattr(self.treatment, attr)
        return m * self.state.living

    def accrue_hazards(self, t0: float, t1: float) -> None:
        s, lat = self.state, self.latent
        hazard.advance(
            s.lmn_hazard, lat.lmn_speed * self.multiplier("lmn_speed"), lat.lmn_onset, t0, t1
        )
        hazard.advance(
            s.umn_hazard, lat.umn_speed * self.multiplier("umn_speed"), lat.umn_onset, t0, t1
        )

    def umn_loss(self, t0: float, t1: float) -> None:
        """Tract axons whose UMN hazard (accrued to ``t1``) has passed their threshold die, and
        the spinal circuits below adapt to the loss (:func:`umn.release`)."""
        s = self.state
        rows = np.flatnonzero(s.living)  # the hazard of the dead no longer accrues
        if len(rows) == len(s.living):
            rows = slice(None)
        s.umn_integrity = u = umn.lose_axons(
            s.umn_hazard, s.umn_threshold, s.umn_alive, s.living
        )
        loss = 1.0 - u[rows]
        s.umn_release[rows] = umn.release(s.umn_release[rows], loss, t1 - t0)

    def motor_units(self, t0: float, t1: float) -> None:
        """Atrophy of old orphans, LMN deaths, and adoption of orphans by survivors over one step
        of ``dt``: one fused pass (:mod:`progression.kernel`) or the same phases as whole-array
        numpy operations."""
        s = self.state
        rate = self.latent.adoption_rate * self.multiplier("reinnervation_rate")
        offered = 1.0 - np.exp(-rate * self.dt)
        q = self.scenario.reinnervation.sick_exponent
        if self.engine == "kernel":
            kernel.step_units(
                s.lmn_hazard,
                self.body.start,
                s.threshold,
                s.alive,
                s.fibres,
                self.body.base,
                self.capacity_scale[:, 0],
                s.orphans,
                s.atrophied,
                offered,
                q,
                s.living,
                self.fibres_sum,
                self.alive_count,
            )
            return
        living = s.living[:, None, None]
        reinnervation.age_and_atrophy(s.orphans, s.atrophied, where=living)
        at_unit = self.hazard_at_units()
        dying = lmn.deaths(at_unit, s.threshold, s.alive & s.living[:, None])
        s.orphans[:, :, 0] += lmn.release_fibres(dying, s.fibres, s.alive, self.starts)
        reinnervation.adopt(
            s.fibres,
            s.alive,
            lmn.sickness(at_unit, s.threshold),
            self.capacity_scale * self.body.base,
            s.orphans,
            offered,
            q,
            self.starts,
            self.body.muscle_of,
        )
        self.fibres_sum[:] = s.fibres_per_muscle(self.starts)
        self.alive_count[:] = s.units_alive_per_muscle(self.starts)

    def hazard_at_units(self) -> np.ndarray:
        """(patients, units) cumulative LMN hazard of each unit's pool (float32)."""
        return self.state.lmn_hazard.astype(np.float32)[:, self.body.muscle_of]

    # -- function, symptoms, death, visits ---------------------------------------------------

    def integrity(self) -> np.ndarray:
        """(patients, compartments) UMN tract integrity U."""
        return self.state.umn_integrity

    def strength(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """(patients, muscles) force over healthy force: living fibres times the UMN drive
        ``1 - a_u (1 - U) ** p`` (``drive_weakness``, ``drive_exponent``)."""
        frac = self.fibres_sum[rows] / self.healthy
        umn = self.scenario.disease.umn
        a_u, p = (umn.drive_weakness, umn.drive_exponent) if umn else (0.0, 1.0)
        u = self.state.umn_integrity[rows][:, self.body.compartment_of_muscle]
        return frac * (1.0 - a_u * (1.0 - u) ** p)

    def compartment_function(self, strength: np.ndarray | None = None) -> np.ndarray:
        """(patients, compartments) mean strength of each compartment's muscles (1 if none)."""
        strength = self.strength() if strength is None else strength
        out = np.ones((len(self.ids), len(COMPARTMENTS)))
        for c in range(len(COMPARTMENTS)):
            cols = self.body.compartment_of_muscle == c
            if cols.any():
                out[:, c] = strength[:, cols].mean(axis=1)
        return out

    def respiratory_strength(self, strength: np.ndarray | None = None) -> np.ndarray:
        """(patients,) inspiratory strength over healthy: the pump (hemidiaphragms and
        intercostals; 1 if none) and, with ``respiration.upper_airway_weight``, the upper
        airway (the bulbar muscles' mean strength)."""
        strength = self.strength() if strength is None else strength
        total = np.zeros(len(self.ids))
        weight = 0.0
        for i, m in enumerate(self.body.muscles):
            w = RESPIRATORY_WEIGHTS.get(m.name, 0.0)
            total += w * strength[:, i]
            weight += w
        pump = total / weight if weight else np.ones(len(self.ids))
        airway = self.scenario.respiration.upper_airway_weight
        bulbar = [i for i, m in enumerate(self.body.muscles) if m.region == "bulbar"]
        if airway > 0 and bulbar:
            return (1.0 - airway) * pump + airway * strength[:, bulbar].mean(axis=1)
        return pump

    def symptoms(self, t0: float, t1: float) -> None:
        """Region onset: the first time a region's function falls below the patient's threshold
        (linear interpolation within the step, so onsets are fractional months)."""
        strength = self.strength()
        f1 = self.compartment_function(strength)
        f0 = self.function
        thr = self.latent.symptom_threshold[:, None]
        crossed = (f1 < thr) & (f0 >= thr) & self.state.living[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(f0 > f1, (f0 - thr) / (f0 - f1), 1.0)
        when = t0 + self.dt * np.clip(frac, 0.0, 1.0)
        self.function = f1
        self.respiration_now = self.respiratory_strength(strength)
        if not crossed.any():
            return
        for c, (region, side) in enumerate(COMPARTMENTS):
            r = REGIONS.index(region)
            rows = np.flatnonzero(crossed[:, c] & (when[:, c] < self.region_onset[:, r]))
            first = rows[~np.isfinite(self.region_onset[rows, r])]
            self.region_onset[rows, r] = when[rows, c]
            if len(first):
                self.add_events(first, when[first, c], "region_onset", region, side)
        onset = self.region_onset.min(axis=1)
        new = np.isfinite(onset) & ~np.isfinite(self.symptom_onset)
        self.symptom_onset[new] = onset[new]
        if self.scenario.visits.start == "symptoms":
            due = np.ceil(onset[new] + self.latent.referral_delay[new] - 1e-9)
            self.next_visit[new] = np.maximum(due, np.ceil(onset[new] - 1e-9))

    def deaths(self, t0: float, t1: float) -> None:
        """Respiratory failure (strength crossing the patient's threshold) or other causes."""
        living = self.state.living
        r0, r1 = self.respiration, self.respiration_now
        thr = self.latent.respiratory_threshold
        failing = living & (r1 < thr)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(r0 > r1, (r0 - thr) / (r0 - r1), 1.0)
        resp_month = t0 + self.dt * np.clip(frac, 0.0, 1.0)
        bg = self.latent.background_death
        other = living & (bg <= t1)
        when = np.where(other & (~failing | (bg < resp_month)), bg, resp_month)
        cause = np.where(
            other & (~failing | (bg < resp_month)), "other causes", "respiratory failure"
        )
        dead = np.flatnonzero(failing | other)
        self.respiration = r1
        if len(dead):
            self.death_month[dead] = when[dead]
            self.death_cause[dead] = cause[dead]
            living[dead] = False
            self.add_events(dead, when[dead], "death", None, cause[dead])

    def examination(self, t0: float, t1: float) -> None:
        """The visits that fall due at the step's end ``t1`` (:meth:`visit`)."""
        self.visit()

    def visit(self) -> None:
        """Examine every living patient whose visit falls due at this month."""
        due = np.flatnonzero(self.state.living & (self.next_visit <= self.month + 1e-9))
        if not len(due):
            return
        first = due[~np.isfinite(self.first_visit[due])]
        self.first_visit[first] = self.month
        if len(first):
            self.add_events(first, np.full(len(first), self.month), "first_visit", None, None)
        changed, category = self.examiner.examine(self, due, self.month)
        if len(changed):
            self.add_events(changed, np.full(len(changed), self.month), "diagnosis", None, category)
        if self.treatment is not None and self.treatment.start == "first_visit":
            self.treated[due] = True
        interval = np.full(len(due), float(self.scenario.visits.interval_months))
        if self.scenario.trial is not None:
            interval = self.screen_and_enrol(due, interval)
        self.next_visit[due] += interval

    def screen_and_enrol(self, due: np.ndarray, interval: np.ndarray) -> np.ndarray:
        """Screen the patients just examined, enrol (randomise) the eligible, and return each
        one's months to the next visit: the trial's interval while in the trial."""
        trial = self.scenario.trial
        record = self.examiner.visit_rows[-1]
        fresh = ~np.isfinite(self.enrolment[due])
        self.screenings[due[fresh]] += 1
        ok = fresh & trial_rules.eligible(
            trial.eligibility,
            record,
            self.month - self.symptom_onset[due],
            self.latent.age_years[due] + self.month / 12.0,
        )
        enrol = due[ok]
        if len(enrol):
            self.enrolment[enrol] = self.month
            self.add_events(enrol, np.full(len(enrol), self.month), "enrolment", None, self.arm)
            if self.treatment is not None and self.treatment.start == "enrolment":
                self.treated[enrol] = True
        in_trial = self.month < self.enrolment[due] + trial.duration_months - 1e-9
        return np.where(in_trial, float(trial.visit_interval_months), interval)

    def add_events(self, rows, month, event: str, region, detail) -> None:
        n = len(rows)
        self.events.append(
            {
                "patient_id": self.ids[rows],
                "month": np.asarray(month, dtype=np.float64),
                "event": np.full(n, event, dtype=object),
                "region": np.full(n, region, dtype=object)
                if region is None or isinstance(region, str)
                else region,
                "detail": np.full(n, detail, dtype=object)
                if detail is None or isinstance(detail, str)
                else np.asarray(detail, dtype=object),
            }
        )

    # -- output ------------------------------------------------------------------------------

    def dropout_month(self) -> np.ndarray:
        """(patients,) month each enrolled patient leaves the trial for reasons unrelated to
        outcome (inf: never, or death or the trial's end came first)."""
        leaves = self.enrolment + self.dropout_after
        if self.scenario.trial is None:
            return np.full(len(self.ids), np.inf)
        ends = self.enrolment + self.scenario.trial.duration_months
        return np.where((leaves < ends) & (leaves < self.death_month), leaves, np.inf)

    def results(self) -> dict[str, pa.Table]:
        """The chunk's four tables for this arm (see :mod:`progression.tables`)."""
        gone = np.flatnonzero(np.isfinite(self.dropout_month()))
        if len(gone):
            self.add_events(gone, self.dropout_month()[gone], "dropout", None, None)
        return tables.build(self)


@dataclass
class ChunkResult:
    """What one chunk produces: its tables (all arms) and the work done."""

    tables: dict[str, pa.Table]
    unit_steps: int
    timings: dict[str, float]
    patient_years: float


def simulate_chunk(scenario: Scenario, patient_ids: np.ndarray) -> ChunkResult:
    """Simulate a chunk of patients in every arm; a patient's rows depend only on its id."""
    per_table: dict[str, list[pa.Table]] = {}
    unit_steps = 0
    years = 0.0
    timings: dict[str, float] = {}
    for arm in scenario.arm_names:
        cohort = CohortModel(scenario, patient_ids, arm)
        cohort.run()
        unit_steps += cohort.unit_steps
        years += float(np.minimum(cohort.death_month, cohort.month).sum()) / 12.0
        for k, v in cohort.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        for name, table in cohort.results().items():
            per_table.setdefault(name, []).append(table)
    return ChunkResult(
        tables={k: pa.concat_tables(v) for k, v in per_table.items()},
        unit_steps=unit_steps,
        timings=timings,
        patient_years=years,
    )


def bytes_per_patient(scenario: Scenario) -> int:
    """Peak memory of one patient in a chunk (bytes), for sizing chunks: the unit arrays
    (fibres, threshold, alive, the stimulation thresholds and the exam's temporaries, about 30
    bytes per unit), the tracts, and the output rows of every visit (recorded CMAP scans: about
    60 bytes per stimulus)."""
    body = Body.from_muscles(scenario.muscles())
    axons = scenario.disease.umn.axons if scenario.disease.umn else 1
    visits = scenario.time.duration_months / scenario.visits.interval_months + 1
    rows = visits * (body.n_muscles * 200 + 300)
    rec = scenario.exam.scans
    scanned = sum(m.name in rec.muscles for m in body.muscles)
    rows += visits / rec.every_nth_visit * scanned * scenario.exam.scan_stimuli * 60
    return int(30 * body.n_units + 12 * axons * len(COMPARTMENTS) + rows + 4096)
