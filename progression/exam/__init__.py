"""Examinations at visits: a neurologist's and an EMG laboratory's findings from the state.

:class:`Examiner` reads a cohort's state for the patients due at a visit and records one row per
patient (``visits``) and one per patient and muscle (``muscles``). It never changes the
physiology. Measurement noise is keyed by (seed, patient, month), so the same patient seen in
two arms at the same month gets the same noise (common random numbers), and examining a patient
twice at the same month gives the same findings.

Findings of dysfunction per region accumulate over visits (:mod:`progression.exam.criteria`
says what counts); soft findings (brisk jaw jerk, CMCT beyond the upper limit of normal) count
once seen at two consecutive visits.
"""

from __future__ import annotations

import numpy as np

from progression import random as rnd
from progression.body import COMPARTMENTS, REGIONS, Body
from progression.exam import alsfrs, criteria, scans, signs, tests, units
from progression.processes import umn

#: Muscles whose tendon reflex and tone are examined (biceps jerk, knee jerk).
REFLEX_MUSCLES = ("biceps", "quadriceps")

_Z_PER_MUSCLE = 8  # cmap, munix, mrc, reflex, fasciculation, fibrillation, mup, cmct
_U_PER_MUSCLE = 1  # fasciculation count


class Examiner:
    """Examines patients of one cohort and accumulates the rows of its tables.

    Args:
        scenario: the scenario (its ``exam`` section sets noise and methods).
        body: the body map.
        ids: (patients,) patient ids of the chunk.
    """

    def __init__(self, scenario, body: Body, ids: np.ndarray) -> None:
        self.scenario = scenario
        self.body = body
        self.ids = ids
        self.seed = scenario.cohort.seed
        self.params = scenario.exam
        n, m = len(ids), body.n_muscles
        z = rnd.normal(self.seed, "exam:subject", ids, m + 5 + len(alsfrs.ITEMS))
        u = rnd.uniform(self.seed, "exam:subject-u", ids, 2)
        self.cmap_subject = np.exp(self.params.cmap_subject_cov * z[:, :m])
        self.reflex_offset = 0.15 * z[:, m]
        self.jaw_offset = 0.15 * z[:, m + 1]
        self.svc_baseline = 100.0 + 10.0 * z[:, m + 2]
        self.item_jitter = alsfrs.PATIENT_JITTER * z[:, m + 5 :]
        zs = rnd.normal(self.seed, "exam:subject-munix", ids, m)
        sigma = tests.munix_subject_sigma(self.params.munix_cov)
        self.munix_subject = np.exp(sigma * zs - sigma**2 / 2)
        self.babinski_threshold = 0.9 * u[:, 0]
        self.pba_susceptible = u[:, 1] < 0.5
        self.mv_per_fibre = np.array([mu.cmap_mv for mu in body.muscles]) / body.healthy_fibres
        self.healthy_mean = np.array([mu.innervation_ratio for mu in body.muscles], dtype=float)
        self.munix_scale = np.array(
            [
                (mu.munix if mu.munix is not None else 0.9 * mu.units)
                / tests.effective_units(body.base[None, body.start[i] : body.start[i + 1]])[0]
                for i, mu in enumerate(body.muscles)
            ]
        )
        self.item_muscles = alsfrs.item_muscles(body)
        self.region_of_muscle = np.array([REGIONS.index(mu.region) for mu in body.muscles])
        self.mup_healthy = np.array([mu.mup_uv for mu in body.muscles], dtype=float)
        self.units = np.array([mu.units for mu in body.muscles])
        self.reflex_muscles = np.array([mu.name in REFLEX_MUSCLES for mu in body.muscles])
        self.tms_target = np.array([mu.cmct_ms is not None for mu in body.muscles])
        self.cmct_healthy = np.array([mu.cmct_ms or np.nan for mu in body.muscles])
        umn_process = scenario.disease.umn
        self.velocities = umn.velocities(umn_process.axons if umn_process is not None else 1)
        self.fast_axons = tests.fast_axons(self.velocities)
        self.cmct_limit = np.array(
            [criteria.cmct_upper_limit(mu.cmct_ms) if mu.cmct_ms else np.inf for mu in body.muscles]
        )
        self.lmn_seen = np.zeros((n, len(REGIONS)), dtype=bool)
        self.umn_seen = np.zeros((n, len(REGIONS)), dtype=bool)
        # Soft findings at the patient's last visit and at the one before it, to confirm them.
        self.soft_month = np.full(n, -np.inf)
        self.soft_last = np.zeros((n, len(REGIONS)), dtype=bool)
        self.soft_before = np.zeros((n, len(REGIONS)), dtype=bool)
        self.diagnosis = np.full(n, "none", dtype=object)
        self.visit_rows: list[dict[str, np.ndarray]] = []
        self.muscle_rows: list[dict[str, np.ndarray]] = []
        self.scan_rows: list[dict[str, np.ndarray]] = []
        # Stimulus-response recordings: axonal thresholds drawn once, sorted per muscle.
        self.scan_muscles = np.array([mu.name in self.params.scans.muscles for mu in body.muscles])
        self.incremental = self.params.mune_method == "incremental"
        self.mune_muscles = np.array([mu.name in self.params.mune_muscles for mu in body.muscles])
        if (self.incremental and self.mune_muscles.any()) or self.scan_muscles.any():
            self.thr_sorted, self.thr_order = scans.thresholds(
                self.seed, ids, body.start, self.params.threshold_spread
            )
        self.visits_seen = np.zeros(n, dtype=np.int64)
        self.last_exam = np.full(n, -np.inf)

    def examine(self, cohort, rows: np.ndarray, month: float) -> tuple[np.ndarray, np.ndarray]:
        """Examine the patients at ``rows`` at ``month``; returns rows whose diagnosis changed
        and their new category."""
        body, p, s = self.body, self.params, cohort.state
        n, m = len(rows), body.n_muscles
        ids = self.ids[rows]
        z = rnd.normal(self.seed, f"exam:{month:g}", ids, m * _Z_PER_MUSCLE + 4 + len(alsfrs.ITEMS))
        u = rnd.uniform(
            self.seed, f"exam-u:{month:g}", ids, m * (_U_PER_MUSCLE + p.mune_sample_units)
        )
        zm = z[:, : m * _Z_PER_MUSCLE].reshape(n, m, _Z_PER_MUSCLE)
        zp = z[:, m * _Z_PER_MUSCLE :]

        strength = cohort.strength(rows)
        integrity = umn.integrity(s.umn_alive[rows])
        healthy = body.healthy_fibres
        exc = cohort.scenario.excitability
        count, total, squares, rate = units.muscle_sums(
            rows, s.lmn_hazard, body.compartment_of_muscle, body.start, s.threshold, s.alive,
            s.fibres, body.base, exc.margin_mv, exc.sickness_exponent, exc.noise_mv,
            exc.max_rate_per_min, exc.enlargement_exponent,
        )
        fib_frac = total / healthy
        orphan_frac = s.orphans[rows].sum(axis=2) / healthy
        units_frac = count / self.units
        u_muscle = integrity[:, body.compartment_of_muscle]

        # SMUP millivolts per fibre at this recording: the CMAP's, so SMUPs sum to the CMAP.
        factor = tests.cmap_factor(zm[:, :, 0], p.cmap_cov)
        scale = self.mv_per_fibre * self.cmap_subject[rows] * factor
        cmap = total * scale  # CMAP amplitude (mV)
        if not self.mune_muscles.any():
            mune = np.full((n, m), np.nan)
        elif self.incremental:
            mune, _ = scans.incremental_mune(
                self.thr_sorted,
                self.thr_order,
                s.alive,
                s.fibres,
                rows,
                body.start,
                scale,
                cmap,
                rnd.starts(self.seed, f"mune:{month:g}", ids),
                rs=p.threshold_fluctuation,
                noise_uv=p.recording_noise_uv,
                detect_sd=p.increment_detection_sd,
                step=p.stimulus_step,
                increments=p.mune_increments,
                measured=self.mune_muscles,
            )
        else:
            zk = rnd.normal(self.seed, f"exam-smup:{month:g}", ids, m * p.mune_sample_units)
            mune = self._mune_mean_smup(s, rows, cmap, u, zk)
        self._record_scans(cohort, rows, month, scale)

        k = p.mune_sample_units
        reflexive = self.reflex_muscles
        tms = self.tms_target
        v_fast = umn.fastest_velocity(s.umn_alive[rows], self.velocities, self.fast_axons)
        v_fast = v_fast[:, body.compartment_of_muscle]
        mep = u_muscle >= p.mep_integrity
        cmct = tests.cmct(v_fast, self.velocities, self.cmct_healthy, p.cmct_sd_ms, zm[:, :, 7])
        per_muscle = {
            "cmap_mv": cmap,
            "mune": mune,
            "munix": tests.munix(
                total, squares, self.munix_scale, self.munix_subject[rows], zm[:, :, 1],
                p.munix_cov,
            ),
            "mrc_grade": signs.mrc_grade(strength, zm[:, :, 2], p.mrc_sd),
            "reflex_grade": np.where(
                reflexive,
                signs.reflex_grade(
                    u_muscle, units_frac, self.reflex_offset[rows, None], zm[:, :, 3], p.reflex_sd
                ),
                np.int8(-1),
            ).astype(np.int8),
            "tone": np.where(reflexive, signs.tone(u_muscle, units_frac), None),
            "wasting": signs.wasting(fib_frac, orphan_frac),
            "fasciculations_per_min": tests.fasciculations(rate, u[:, :: 1 + k], zm[:, :, 4]),
            "fibrillation_grade": tests.fibrillation_grade(orphan_frac, zm[:, :, 5]),
            "mup_amplitude_uv": tests.mup_amplitude(
                total, count, self.healthy_mean, self.mup_healthy, zm[:, :, 6]
            ),
            "cmct_ms": np.where(tms & mep, cmct, np.nan),
            "mep_present": np.where(tms, mep, None),
            "units_alive_fraction": units_frac,
            "fibres_fraction": fib_frac,
            "strength_fraction": strength,
        }

        # Patient-level signs and scores.
        bulbar = COMPARTMENTS.index(("bulbar", "midline"))
        u_b = integrity[:, bulbar]
        ls = [COMPARTMENTS.index(("lumbosacral", sd)) for sd in ("left", "right")]
        tongue = [i for i, mu in enumerate(body.muscles) if mu.name == "tongue"]
        t_units = units_frac[:, tongue[0]] if tongue else np.ones(n)
        t_fibres = fib_frac[:, tongue[0]] if tongue else np.ones(n)
        babinski = signs.babinski(integrity[:, ls].min(axis=1), self.babinski_threshold[rows])
        jaw = signs.jaw_jerk(u_b, t_units, self.jaw_offset[rows] + 0.1 * zp[:, 0])
        dys = signs.dysarthria(u_b, t_fibres)
        pba = signs.pseudobulbar_affect(u_b, self.pba_susceptible[rows])
        jitter = self.item_jitter[rows] + alsfrs.VISIT_JITTER * zp[:, 4:]
        item = alsfrs.items(strength, self.item_muscles, jitter)
        sub = {
            k: sum(item[i].astype(np.int16) for i in names) for k, names in alsfrs.SUBSCORES.items()
        }
        total = sum(sub.values())
        svc = alsfrs.svc_percent(
            cohort.respiration[rows], self.svc_baseline[rows], zp[:, 1], p.svc_cov
        )

        # Findings per region, accumulated over visits.
        lmn_now, umn_now, soft_now = criteria.region_findings(
            per_muscle,
            self.region_of_muscle,
            self.mup_healthy,
            self.cmct_limit,
            self.tms_target,
            babinski,
            jaw,
            dys,
            pba,
        )
        umn_now |= soft_now & self._soft_previous(rows, soft_now, month)
        self.lmn_seen[rows] |= lmn_now
        self.umn_seen[rows] |= umn_now
        since = month - cohort.symptom_onset[rows]
        since = np.where(np.isfinite(since) & (since >= 0), since, np.nan)
        dx, gold = criteria.classify(self.lmn_seen[rows], self.umn_seen[rows], since)
        changed = dx != self.diagnosis[rows]
        self.diagnosis[rows] = dx

        self.visit_rows.append(
            {
                "patient_id": ids,
                "month": np.full(n, month),
                "alsfrs_r": total.astype(np.int16),
                **{f"alsfrs_{k}": v.astype(np.int16) for k, v in sub.items()},
                "svc_percent": svc,
                "babinski": babinski,
                "jaw_jerk": jaw,
                "dysarthria": dys,
                "pseudobulbar_affect": pba,
                "diagnosis": dx,
                "gold_coast": gold,
                "lmn_regions": self.lmn_seen[rows].sum(axis=1).astype(np.int8),
                "umn_regions": self.umn_seen[rows].sum(axis=1).astype(np.int8),
            }
        )
        self.muscle_rows.append(
            {
                "patient_id": np.repeat(ids, m),
                "month": np.full(n * m, month),
                "muscle_index": np.tile(np.arange(m), n),
                **{key: val.reshape(-1) for key, val in per_muscle.items()},
            }
        )
        return rows[changed], dx[changed]

    def _mune_mean_smup(self, state, rows, cmap, u, zk) -> np.ndarray:
        """(examined, muscles) MUNE by the interim mean-SMUP method (``mune_method``)."""
        body, k = self.body, self.params.mune_sample_units
        out = np.full_like(cmap, np.nan)
        for i in np.flatnonzero(self.mune_muscles):
            sl = slice(body.start[i], body.start[i + 1])
            out[:, i] = tests.mune_mean_smup(
                state.fibres[rows, sl],
                state.alive[rows, sl],
                cmap[:, i],
                self.mv_per_fibre[i],
                self.cmap_subject[rows, i],
                u[:, i * (1 + k) + 1 : (i + 1) * (1 + k)],
                zk[:, i * k : (i + 1) * k],
                self.params.smup_cov,
            )
        return out

    def _record_scans(self, cohort, rows: np.ndarray, month: float, scale: np.ndarray) -> None:
        """Count the visit and record the CMAP scans the scenario asks for at it (``scans``)."""
        new = self.last_exam[rows] < month  # a repeat examination is not a new visit
        self.visits_seen[rows[new]] += 1
        self.last_exam[rows[new]] = month
        if not self.scan_muscles.any():
            return
        due = (self.visits_seen[rows] - 1) % self.params.scans.every_nth_visit == 0
        j, i = np.nonzero(due[:, None] & self.scan_muscles[None, :])
        if not len(j):
            return
        ids = self.ids[rows]
        stimulus, amplitude = scans.scan(
            self.thr_sorted,
            self.thr_order,
            cohort.state.alive,
            cohort.state.fibres,
            self.body.start,
            rows[j],
            i,
            scale[j, i],
            rnd.starts(self.seed, f"scan:{month:g}", ids)[j],
            rs=self.params.threshold_fluctuation,
            noise_uv=self.params.recording_noise_uv,
            stimuli=self.params.scan_stimuli,
        )
        k = stimulus.shape[1]
        self.scan_rows.append(
            {
                "patient_id": np.repeat(ids[j], k),
                "month": np.full(len(j) * k, month),
                "muscle_index": np.repeat(i, k),
                "stimulus_ma": stimulus.reshape(-1),
                "amplitude_mv": amplitude.reshape(-1),
            }
        )

    def _soft_previous(self, rows: np.ndarray, soft: np.ndarray, month: float) -> np.ndarray:
        """Soft findings at each patient's previous visit (before ``month``); records ``soft``
        as this visit's. A repeat examination at the same month does not count as a visit."""
        repeat = self.soft_month[rows] >= month
        prev = np.where(repeat[:, None], self.soft_before[rows], self.soft_last[rows])
        new = rows[~repeat]
        self.soft_before[new] = self.soft_last[new]
        self.soft_month[new] = month
        self.soft_last[rows] = soft
        return prev


__all__ = ["Examiner"]
