"""Examinations at visits: a neurologist's and an EMG laboratory's findings from the state.

:class:`Examiner` reads a cohort's state for the patients due at a visit and records one row per
patient (``visits``) and one per patient and muscle (``muscles``). It never changes the
physiology. Measurement noise is keyed by (seed, patient, month), so the same patient seen in
two arms at the same month gets the same noise (common random numbers), and examining a patient
twice at the same month gives the same findings. :func:`visit_noise` and :func:`subject_noise`
make every draw and name it by what it perturbs; the ``exam`` section of the scenario sets how
much each one perturbs.

Findings of dysfunction per region accumulate over visits (:mod:`progression.exam.criteria`
says what counts); soft findings (a brisk jaw jerk) count once seen at two consecutive visits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from progression import random as rnd
from progression.body import COMPARTMENTS, REGIONS, Body
from progression.exam import alsfrs, criteria, mscanfit, scans, signs, tests, tms, units
from progression.processes import umn

#: Muscles whose tendon reflex and tone are examined (biceps jerk, knee jerk).
REFLEX_MUSCLES = ("biceps", "quadriceps")

# ---------------------------------------------------------------------------------------------
# Noise: every draw of the examinations, named by what it perturbs
#
# A normal stream's columns are not independent of its width: Box-Muller pairs the i-th uniform
# with the (n + i)-th, so adding or removing one column changes every number of the stream.
# The layouts below are therefore fixed, unused columns included.

#: A visit's normal stream ``exam:<month>``: these per muscle, interleaved muscle by muscle
#: (all of the first muscle's, then the next one's), then :data:`_VISIT_Z_PER_PATIENT`.
_VISIT_Z_PER_MUSCLE = (
    "cmap", "munix", "mrc", "reflex", "fasciculation_z", "fibrillation", "mup", "cmct",
)
#: Then per patient: (name, columns), None for a single column (a vector).
_VISIT_Z_PER_PATIENT = (
    ("jaw", None),
    ("svc", None),
    # Drawn since the first version and never used. Removing them would narrow the stream and
    # so change every number in it, the ALSFRS-R item noise after them included.
    ("unused_reserved", 2),
    ("alsfrs_items", len(alsfrs.ITEMS)),
)
#: A visit's normal stream ``exam-signs:<month>`` (rater noise of the bedside signs that were
#: noise-free thresholds until issue 17): these per muscle, interleaved muscle by muscle, then
#: :data:`_SIGNS_Z_PER_PATIENT`.
_SIGNS_Z_PER_MUSCLE = ("tone", "wasting")
_SIGNS_Z_PER_PATIENT = (("dysarthria_lmn", None), ("dysarthria_umn", None), ("pba", None))


def _columns(z: np.ndarray, layout) -> dict[str, np.ndarray]:
    """The columns of ``z`` split in order by ``layout`` ((name, width or None), ...)."""
    out, c = {}, 0
    for name, width in layout:
        out[name] = z[:, c] if width is None else z[:, c : c + width]
        c += 1 if width is None else width
    assert c == z.shape[1], (c, z.shape)
    return out


@dataclass(frozen=True)
class VisitNoise:
    """One visit's draws for the examined patients, named by what they perturb.

    Standard normal and (examined, muscles) unless stated. The scale of each is an ``exam``
    setting, given in brackets.

    Attributes:
        cmap: CMAP recording factor (``cmap_cov``), shared by the recording's SMUPs.
        munix: MUNIX test-retest noise (``munix_cov``).
        mrc: rater noise on log strength (``mrc_sd``).
        reflex: rater noise on the reflex grade (``reflex_sd``).
        fasciculation_z: a large fasciculation count, by the normal approximation.
        fibrillation: the orphan fraction the needle reads (``fibrillation_sd``).
        mup: needle MUP amplitude (``mup_sd``).
        cmct: CMCT (``cmct_cov`` times the muscle's healthy CMCT).
        jaw: (examined,) rater noise on the jaw-jerk score (``jaw_sd``).
        svc: (examined,) SVC test-retest noise (``svc_cov``).
        unused_reserved: (examined, 2) never used; drawn so that the stream keeps its width.
        alsfrs_items: (examined, items) shift of each ALSFRS-R item's thresholds
            (``alsfrs_visit_sd``).
        fasciculation_u: uniform; a small fasciculation count, by inversion.
        smup_pick: (examined, muscles, ``mune_sample_units``) uniform; the living units whose
            SMUPs the mean-SMUP MUNE samples (drawn but unused with incremental MUNE: the
            columns interleave with ``fasciculation_u``'s).
        smup_size: (examined, muscles, ``mune_sample_units``) each sampled SMUP's measurement
            (``smup_cov``); None unless the mean-SMUP MUNE is measured somewhere.
        rmt: (examined, compartments) test-retest noise of the measured motor threshold
            (``rmt_sd``).
        tone: rater noise on the log of the felt resistance (``tone_sd``).
        wasting: rater noise on the log of the bulk lost (``wasting_sd``).
        dysarthria_lmn, dysarthria_umn: (examined,) listener noise on the log of the bulbar
            fibres lost and of the corticobulbar tract lost (``dysarthria_sd``).
        pba: (examined,) noise on the log of the corticobulbar loss behind pseudobulbar affect
            (``pba_sd``).
    """

    cmap: np.ndarray
    munix: np.ndarray
    mrc: np.ndarray
    reflex: np.ndarray
    fasciculation_z: np.ndarray
    fibrillation: np.ndarray
    mup: np.ndarray
    cmct: np.ndarray
    jaw: np.ndarray
    svc: np.ndarray
    unused_reserved: np.ndarray
    alsfrs_items: np.ndarray
    fasciculation_u: np.ndarray
    smup_pick: np.ndarray
    smup_size: np.ndarray | None
    rmt: np.ndarray
    tone: np.ndarray
    wasting: np.ndarray
    dysarthria_lmn: np.ndarray
    dysarthria_umn: np.ndarray
    pba: np.ndarray


def visit_noise(
    seed: int, month: float, ids: np.ndarray, muscles: int, sample_units: int, mean_smup: bool
) -> VisitNoise:
    """A visit's draws for patients ``ids`` (streams ``exam:<month>``, ``exam-u:<month>``,
    ``exam-tms:<month>``, ``exam-signs:<month>`` and, if ``mean_smup``,
    ``exam-smup:<month>``)."""
    n, m, k = len(ids), muscles, sample_units
    per_muscle = len(_VISIT_Z_PER_MUSCLE)
    width = m * per_muscle + sum(1 if w is None else w for _, w in _VISIT_Z_PER_PATIENT)
    z = rnd.normal(seed, f"exam:{month:g}", ids, width)
    # Per muscle: one uniform for the fasciculation count, then k for the sampled units.
    u = rnd.uniform(seed, f"exam-u:{month:g}", ids, m * (1 + k)).reshape(n, m, 1 + k)
    zm = z[:, : m * per_muscle].reshape(n, m, per_muscle)
    size = None
    if mean_smup:
        size = rnd.normal(seed, f"exam-smup:{month:g}", ids, m * k).reshape(n, m, k)
    per_sign = len(_SIGNS_Z_PER_MUSCLE)
    zs = rnd.normal(seed, f"exam-signs:{month:g}", ids, m * per_sign + len(_SIGNS_Z_PER_PATIENT))
    zsm = zs[:, : m * per_sign].reshape(n, m, per_sign)
    return VisitNoise(
        **{name: zm[:, :, j] for j, name in enumerate(_VISIT_Z_PER_MUSCLE)},
        **_columns(z[:, m * per_muscle :], _VISIT_Z_PER_PATIENT),
        fasciculation_u=u[:, :, 0],
        smup_pick=u[:, :, 1:],
        smup_size=size,
        rmt=rnd.normal(seed, f"exam-tms:{month:g}", ids, len(COMPARTMENTS)),
        **{name: zsm[:, :, j] for j, name in enumerate(_SIGNS_Z_PER_MUSCLE)},
        **_columns(zs[:, m * per_sign :], _SIGNS_Z_PER_PATIENT),
    )


@dataclass(frozen=True)
class SubjectNoise:
    """Each patient's own draws, made once: a person's levels that every visit shares.

    Standard normal unless stated; the ``exam`` setting that scales each is in brackets.

    Attributes:
        cmap: (patients, muscles) healthy CMAP amplitude (``cmap_subject_cov``).
        reflex: (patients,) tendon-reflex level (``reflex_subject_sd``).
        jaw: (patients,) jaw-jerk level (``jaw_subject_sd``).
        svc: (patients,) healthy vital capacity (``svc_subject_sd``).
        unused_reserved: (patients, 2) never used; drawn so that the stream keeps its width.
        alsfrs_items: (patients, items) shift of each ALSFRS-R item's thresholds
            (``alsfrs_subject_sd``).
        munix: (patients, muscles) healthy MUNIX level (``munix_population_cov``).
        babinski: (patients,) uniform; the patient's Babinski threshold
            (:func:`~progression.exam.signs.babinski_threshold`).
        pba: (patients,) uniform; susceptibility to pseudobulbar affect (below 0.5).
        rmt: (patients,) healthy resting motor threshold, hand and leg alike
            (``rmt_subject_sd``).
        cmct: (patients, compartments) healthy CMCT offset of each tract (its SD: what
            ``cmct_cov`` leaves of the published between-person SD).
        wasting: (patients,) the person's habitus: how visible a loss of bulk is in them, on
            the log of the bulk lost (``wasting_subject_sd``).
        hoffmann: (patients,) uniform; the patient's Hoffmann threshold
            (:func:`~progression.exam.signs.hoffmann_threshold`).
    """

    cmap: np.ndarray
    reflex: np.ndarray
    jaw: np.ndarray
    svc: np.ndarray
    unused_reserved: np.ndarray
    alsfrs_items: np.ndarray
    munix: np.ndarray
    babinski: np.ndarray
    pba: np.ndarray
    rmt: np.ndarray
    cmct: np.ndarray
    wasting: np.ndarray
    hoffmann: np.ndarray


def subject_noise(seed: int, ids: np.ndarray, muscles: int) -> SubjectNoise:
    """Patients' own draws (streams ``exam:subject``, ``exam:subject-u``,
    ``exam:subject-munix``, ``exam:subject-tms``, ``exam:subject-signs``,
    ``exam:subject-hoffmann``)."""
    layout = (
        ("cmap", muscles),
        ("reflex", None),
        ("jaw", None),
        ("svc", None),
        # Drawn since the first version and never used; removing them would narrow the
        # stream and so change every number in it.
        ("unused_reserved", 2),
        ("alsfrs_items", len(alsfrs.ITEMS)),
    )
    z = rnd.normal(seed, "exam:subject", ids, sum(1 if w is None else w for _, w in layout))
    u = rnd.uniform(seed, "exam:subject-u", ids, 2)
    zs = rnd.normal(seed, "exam:subject-munix", ids, muscles)
    zt = rnd.normal(seed, "exam:subject-tms", ids, 1 + len(COMPARTMENTS))
    return SubjectNoise(
        **_columns(z, layout), munix=zs, babinski=u[:, 0], pba=u[:, 1], rmt=zt[:, 0],
        cmct=zt[:, 1:], wasting=rnd.normal(seed, "exam:subject-signs", ids, 1)[:, 0],
        hoffmann=rnd.uniform(seed, "exam:subject-hoffmann", ids, 1)[:, 0],
    )


@dataclass(frozen=True)
class Readings:
    """What a visit's findings read from the state, for the examined patients.

    (examined, muscles) unless stated; fractions are of the healthy value.

    Attributes:
        strength: force fraction, UMN weakness included.
        integrity: (examined, compartments) UMN tract integrity (alive fraction of the tract).
        tract: integrity of each muscle's compartment.
        release: spinal release (the tract loss the spinal circuits have adapted to) of each
            muscle's compartment.
        count: living units.
        fibres: fibres in living units.
        squares: sum of the living units' squared fibre counts (fibres^2).
        rate: summed spontaneous discharge rate of the living units (per minute).
        fibres_fraction: fibres in living units over the healthy total (orphans excluded).
        orphan_fraction: orphan fibres (denervated, not yet reinnervated) over the healthy total.
        units_fraction: living units over the healthy count.
    """

    strength: np.ndarray
    integrity: np.ndarray
    tract: np.ndarray
    release: np.ndarray
    count: np.ndarray
    fibres: np.ndarray
    squares: np.ndarray
    rate: np.ndarray
    fibres_fraction: np.ndarray
    orphan_fraction: np.ndarray
    units_fraction: np.ndarray


# ---------------------------------------------------------------------------------------------
# The examiner


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
        self.params = p = scenario.exam
        n = len(ids)
        own = subject_noise(self.seed, ids, body.n_muscles)
        self.cmap_subject = np.exp(p.cmap_subject_cov * own.cmap)
        self.reflex_offset = p.reflex_subject_sd * own.reflex
        self.jaw_offset = p.jaw_subject_sd * own.jaw
        self.svc_baseline = 100.0 + p.svc_subject_sd * own.svc  # % predicted: 100 on average
        self.item_jitter = p.alsfrs_subject_sd * own.alsfrs_items
        sigma = tests.munix_subject_sigma(p.munix_cov, p.munix_population_cov)
        self.munix_subject = np.exp(sigma * own.munix - sigma**2 / 2)
        self.babinski_threshold = signs.babinski_threshold(own.babinski)
        self.hoffmann_threshold = signs.hoffmann_threshold(own.hoffmann)
        self.pba_susceptible = own.pba < 0.5
        self.habitus = p.wasting_subject_sd * own.wasting
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
        self._tms_setup(scenario, own)
        # The bulbar and lumbosacral tracts and the muscle that stands for the bulbar LMN pool.
        self.bulbar = COMPARTMENTS.index(("bulbar", "midline"))
        self.lumbosacral = [COMPARTMENTS.index(("lumbosacral", sd)) for sd in ("left", "right")]
        self.cervical = [COMPARTMENTS.index(("cervical", sd)) for sd in ("left", "right")]
        tongue = [i for i, mu in enumerate(body.muscles) if mu.name == "tongue"]
        self.tongue = tongue[0] if tongue else None
        self.lmn_seen = np.zeros((n, len(REGIONS)), dtype=bool)
        self.umn_seen = np.zeros((n, len(REGIONS)), dtype=bool)
        # What a second visit confirms, at the patient's last visit ([0]) and the one before it
        # ([1]): the soft findings per region, and an LMN-only picture (PMA).
        self.visit_month = np.full(n, -np.inf)
        self.soft = np.zeros((2, n, len(REGIONS)), dtype=bool)
        self.lmn_only = np.zeros((2, n), dtype=bool)
        self.diagnosis = np.full(n, "none", dtype=object)
        self.visit_rows: list[dict[str, np.ndarray]] = []
        self.muscle_rows: list[dict[str, np.ndarray]] = []
        self.scan_rows: list[dict[str, np.ndarray]] = []
        # Stimulus-response recordings: axonal thresholds drawn once, sorted per muscle.
        self.scan_muscles = np.array([mu.name in p.scans.muscles for mu in body.muscles])
        self.incremental = p.mune_method == "incremental"
        self.from_scan = p.mune_method in ("incremental", "mscanfit")
        self.mune_muscles = np.array([mu.name in p.mune_muscles for mu in body.muscles])
        # Only the muscles a recording reads: MUNE from stimulation, and the recorded scans.
        stimulated = (self.mune_muscles if self.from_scan else False) | self.scan_muscles
        if stimulated.any():
            self.thr_sorted, self.thr_order = scans.thresholds(
                self.seed, ids, body.start, p.threshold_spread, stimulated
            )
        self.visits_seen = np.zeros(n, dtype=np.int64)
        self.last_exam = np.full(n, -np.inf)
        # Where each patient's latest rows are: the visit batch and the position in it (-1: none).
        self.last_batch = np.full(n, -1, dtype=np.int64)
        self.last_position = np.full(n, -1, dtype=np.int64)

    def examine(self, cohort, rows: np.ndarray, month: float) -> tuple[np.ndarray, np.ndarray]:
        """Examine the patients at ``rows`` at ``month``; returns rows whose diagnosis changed
        and their new category."""
        noise = visit_noise(
            self.seed,
            month,
            self.ids[rows],
            self.body.n_muscles,
            self.params.mune_sample_units,
            mean_smup=self.params.mune_method == "mean_smup" and self.mune_muscles.any(),
        )
        r = self._read_state(cohort, rows)
        found, scale = self._nerve_conduction(cohort, rows, month, r, noise)
        self._record_scans(cohort, rows, month, scale)
        found |= self._strength_and_wasting(rows, r, noise)
        found |= self._reflexes_and_tone(rows, r, noise)
        found |= self._needle_emg(r, noise)
        found |= self._tms(cohort, rows, r, noise)
        found |= self._truth(r)
        assert found.keys() == set(_MUSCLE_COLUMNS), found.keys() ^ set(_MUSCLE_COLUMNS)
        per_muscle = {key: found[key] for key in _MUSCLE_COLUMNS}  # the table's column order
        bedside = self._bedside_signs(rows, r, noise)
        scores = self._function_scores(cohort, rows, r, noise)
        dx, changed = self._diagnose(cohort, rows, month, per_muscle, bedside)
        self._record(rows, month, per_muscle, {**scores, **bedside, **dx})
        return rows[changed], dx["diagnosis"][changed]

    # -- the steps of a visit, in order ---------------------------------------------------------

    def _read_state(self, cohort, rows: np.ndarray) -> Readings:
        """The state the findings read (:class:`Readings`): strength and UMN integrity, and one
        compiled pass over each muscle's living units (:func:`units.muscle_sums`)."""
        body, s = self.body, cohort.state
        strength = cohort.strength(rows)
        integrity = s.umn_integrity[rows]
        healthy = body.healthy_fibres
        exc = cohort.scenario.excitability
        count, total, squares, rate = units.muscle_sums(
            rows, s.lmn_hazard, body.start, s.threshold, s.alive,
            s.fibres, body.base, exc.margin_mv, exc.sickness_exponent, exc.noise_mv,
            exc.max_rate_per_min, exc.enlargement_exponent,
        )
        return Readings(
            strength=strength,
            integrity=integrity,
            tract=integrity[:, body.compartment_of_muscle],
            release=s.umn_release[rows][:, body.compartment_of_muscle],
            count=count,
            fibres=total,
            squares=squares,
            rate=rate,
            fibres_fraction=total / healthy,
            orphan_fraction=s.orphans[rows].sum(axis=2) / healthy,
            units_fraction=count / self.units,
        )

    def _nerve_conduction(
        self, cohort, rows: np.ndarray, month: float, r: Readings, noise: VisitNoise
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Surface recordings after motor-nerve stimulation: ``cmap_mv`` (CMAP amplitude, mV),
        ``mune`` (motor unit number estimate, units; nan where not measured) and ``munix``
        (MUNIX, units). Also returns the recording's scale (mV per fibre), which the SMUPs of
        MUNE and the recorded scans share with the CMAP."""
        p, s = self.params, cohort.state
        n, m = r.fibres.shape
        factor = tests.cmap_factor(noise.cmap, p.cmap_cov)
        scale = self.mv_per_fibre * self.cmap_subject[rows] * factor
        cmap = r.fibres * scale
        if not self.mune_muscles.any():
            mune = np.full((n, m), np.nan)
        elif self.incremental:
            mune, _ = scans.incremental_mune(
                self.thr_sorted,
                self.thr_order,
                s.alive,
                s.fibres,
                rows,
                self.body.start,
                scale,
                cmap,
                rnd.starts(self.seed, f"mune:{month:g}", self.ids[rows]),
                rs=p.threshold_fluctuation,
                noise_uv=p.recording_noise_uv,
                detect_sd=p.increment_detection_sd,
                step=p.stimulus_step,
                increments=p.mune_increments,
                measured=self.mune_muscles,
            )
        elif p.mune_method == "mscanfit":
            mune = self._mune_mscanfit(s, rows, month, scale)
        else:
            mune = self._mune_mean_smup(s, rows, cmap, noise.smup_pick, noise.smup_size)
        munix = tests.munix(
            r.fibres, r.squares, self.munix_scale, self.munix_subject[rows], noise.munix,
            p.munix_cov,
        )
        return {"cmap_mv": cmap, "mune": mune, "munix": munix}, scale

    def _strength_and_wasting(
        self, rows: np.ndarray, r: Readings, noise: VisitNoise
    ) -> dict[str, np.ndarray]:
        """``mrc_grade`` (MRC 0-5, int8) with rater noise, and visible ``wasting`` (bool) with
        the person's habitus and rater noise."""
        p = self.params
        seen = self.habitus[rows, None] + p.wasting_sd * noise.wasting
        return {
            "mrc_grade": signs.mrc_grade(r.strength, noise.mrc, p.mrc_sd),
            "wasting": signs.wasting(r.fibres_fraction, r.orphan_fraction, seen),
        }

    def _reflexes_and_tone(
        self, rows: np.ndarray, r: Readings, noise: VisitNoise
    ) -> dict[str, np.ndarray]:
        """Where examined (:data:`REFLEX_MUSCLES`): ``reflex_grade`` (0 absent to 4 clonus,
        int8; -1 elsewhere) and ``tone`` (spastic, flaccid or normal; None elsewhere)."""
        reflexive = self.reflex_muscles
        grade = signs.reflex_grade(
            r.tract, r.units_fraction, self.reflex_offset[rows, None], noise.reflex,
            self.params.reflex_sd,
        )
        return {
            "reflex_grade": np.where(reflexive, grade, np.int8(-1)).astype(np.int8),
            "tone": np.where(
                reflexive,
                signs.tone(r.release, r.units_fraction, self.params.tone_sd * noise.tone),
                None,
            ),
        }

    def _needle_emg(self, r: Readings, noise: VisitNoise) -> dict[str, np.ndarray]:
        """Needle EMG: ``fasciculations_per_min`` (count at rest over the observation, per
        minute), ``fibrillation_grade`` (0-4, int8) and ``mup_amplitude_uv`` (microvolts; nan
        without living units)."""
        p = self.params
        return {
            "fasciculations_per_min": tests.fasciculations(
                r.rate, noise.fasciculation_u, noise.fasciculation_z, p.fasciculation_minutes
            ),
            "fibrillation_grade": tests.fibrillation_grade(
                r.orphan_fraction, noise.fibrillation, p.fibrillation_sd
            ),
            "mup_amplitude_uv": tests.mup_amplitude(
                r.fibres, r.count, self.healthy_mean, self.mup_healthy, noise.mup, p.mup_sd
            ),
        }

    def _tms(
        self, cohort, rows: np.ndarray, r: Readings, noise: VisitNoise
    ) -> dict[str, np.ndarray]:
        """Transcranial magnetic stimulation of the TMS targets (:mod:`progression.exam.tms`):
        ``mep_present`` (an MEP at maximal stimulator output: bool; None elsewhere) and
        ``cmct_ms`` (central motor conduction time, ms; nan without an MEP and elsewhere).

        Per tract: the surviving drive sets the motor threshold, which the clinic measures with
        test-retest noise; no MEP if it lies beyond maximal output. The latency is recorded at
        ``tms_intensity_rmt`` times the measured threshold (at most maximal output; at maximal
        output when that is below the true threshold, where a marginal MEP needs all the
        surviving drive)."""
        p, target = self.params, self.tms_target
        r1, sat = p.mep_threshold_drive, p.mep_saturation_rmt
        alive = cohort.state.umn_alive[rows]
        rmt0 = self.rmt0[rows]
        d = tms.drive(alive, self.volley)
        measured = tms.measured_threshold(
            tms.motor_threshold(rmt0, d, r1, sat), noise.rmt, p.rmt_sd
        )
        present = tms.mep_present(measured)
        need = tms.latency_drive(measured, rmt0, d, p.tms_intensity_rmt, r1, sat)
        v_onset = tms.onset_velocity(alive, self.velocities, self.volley, need)
        c = self.body.compartment_of_muscle
        cmct = tms.cmct(
            v_onset[:, c], self.v_onset_healthy, self.cmct_healthy, self.cmct_own[rows],
            self.cmct_visit_sd * noise.cmct,
        )
        mep = present[:, c] & target
        return {
            "cmct_ms": np.where(mep, cmct, np.nan),
            "mep_present": np.where(target, present[:, c], None),
        }

    def _tms_setup(self, scenario, own: SubjectNoise) -> None:
        """What TMS needs of each person, once: the tract's velocities and drive weights, the
        healthy RMT per compartment (leg for the lumbosacral tracts, hand elsewhere), the
        healthy onset velocity, and each TMS target's own CMCT offset and visit noise SD."""
        p = self.params
        umn_process = scenario.disease.umn
        self.velocities = umn.velocities(umn_process.axons if umn_process is not None else 1)
        self.volley = tms.volley_weights(self.velocities, p.tms_volley_exponent)
        leg = np.array([region == "lumbosacral" for region, _ in COMPARTMENTS])
        mean = np.where(leg, p.rmt_leg_percent, p.rmt_hand_percent)
        self.rmt0 = tms.subject_rmt(own.rmt[:, None], mean[None, :], p.rmt_subject_sd)
        onset = {
            rmt: tms.healthy_onset(
                self.velocities, self.volley, p.tms_intensity_rmt, rmt, p.rmt_sd,
                p.mep_threshold_drive, p.mep_saturation_rmt,
            )
            for rmt in (p.rmt_hand_percent, p.rmt_leg_percent)
        }
        c = self.body.compartment_of_muscle
        v_h, cov = np.array([onset[m] for m in mean[c]]).T  # per muscle
        self.v_onset_healthy = v_h
        healthy = np.nan_to_num(self.cmct_healthy)
        self.cmct_visit_sd = p.cmct_cov * healthy
        population = np.array([tms.cmct_sd(mu.cmct_ms or 0.0) for mu in self.body.muscles])
        intensity_sd = cov * np.maximum(healthy - tms.SYNAPTIC_DELAY_MS, 0.0)
        own_sd = tms.subject_cmct_sd(population, self.cmct_visit_sd, intensity_sd)
        self.cmct_own = own_sd[None, :] * own.cmct[:, c]

    @staticmethod
    def _truth(r: Readings) -> dict[str, np.ndarray]:
        """Latent truth beside the findings (fractions of healthy, no noise):
        ``units_alive_fraction``, ``fibres_fraction`` and ``strength_fraction``."""
        return {
            "units_alive_fraction": r.units_fraction,
            "fibres_fraction": r.fibres_fraction,
            "strength_fraction": r.strength,
        }

    def _bedside_signs(
        self, rows: np.ndarray, r: Readings, noise: VisitNoise
    ) -> dict[str, np.ndarray]:
        """Patient-level UMN and bulbar signs: ``babinski`` (extensor plantar, bool),
        ``hoffmann`` (bool), ``jaw_jerk`` (absent, reduced, normal or brisk), ``dysarthria``
        (none, flaccid, spastic or mixed) and ``pseudobulbar_affect`` (bool)."""
        n = len(rows)
        bulbar = r.integrity[:, self.bulbar]
        t = self.tongue
        t_units = r.units_fraction[:, t] if t is not None else np.ones(n)
        t_fibres = r.fibres_fraction[:, t] if t is not None else np.ones(n)
        lumbosacral = r.integrity[:, self.lumbosacral].min(axis=1)
        cervical = r.integrity[:, self.cervical].min(axis=1)
        p = self.params
        jaw_score = self.jaw_offset[rows] + p.jaw_sd * noise.jaw
        return {
            "babinski": signs.released(lumbosacral, self.babinski_threshold[rows]),
            "hoffmann": signs.released(cervical, self.hoffmann_threshold[rows]),
            "jaw_jerk": signs.jaw_jerk(bulbar, t_units, jaw_score),
            "dysarthria": signs.dysarthria(
                bulbar, t_fibres, p.dysarthria_sd * noise.dysarthria_lmn,
                p.dysarthria_sd * noise.dysarthria_umn,
            ),
            "pseudobulbar_affect": signs.pseudobulbar_affect(
                bulbar, self.pba_susceptible[rows], p.pba_sd * noise.pba
            ),
        }

    def _function_scores(
        self, cohort, rows: np.ndarray, r: Readings, noise: VisitNoise
    ) -> dict[str, np.ndarray]:
        """``alsfrs_r`` (ALSFRS-R total, 0-48, int16), its subscores ``alsfrs_<name>`` (0-12,
        int16) and ``svc_percent`` (slow vital capacity, % predicted)."""
        p = self.params
        jitter = self.item_jitter[rows] + p.alsfrs_visit_sd * noise.alsfrs_items
        item = alsfrs.items(r.strength, self.item_muscles, jitter)
        sub = {
            k: sum(item[i].astype(np.int16) for i in names) for k, names in alsfrs.SUBSCORES.items()
        }
        total = sum(sub.values())
        svc = alsfrs.svc_percent(
            cohort.respiration[rows], self.svc_baseline[rows], noise.svc, p.svc_cov
        )
        return {
            "alsfrs_r": total.astype(np.int16),
            **{f"alsfrs_{k}": v.astype(np.int16) for k, v in sub.items()},
            "svc_percent": svc,
        }

    def _diagnose(
        self, cohort, rows: np.ndarray, month: float, per_muscle: dict, bedside: dict
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Accumulate the regions with LMN and UMN dysfunction seen so far and classify:
        ``diagnosis`` (ALS, PMA, PLS or none), ``gold_coast`` (bool), ``lmn_regions`` and
        ``umn_regions`` (int8 counts). Also returns which rows' diagnosis changed."""
        lmn_now, umn_now, soft_now = criteria.region_findings(
            per_muscle,
            self.region_of_muscle,
            self.mup_healthy,
            bedside["babinski"],
            bedside["hoffmann"],
            bedside["jaw_jerk"],
            bedside["dysarthria"],
            bedside["pseudobulbar_affect"],
        )
        # A repeat examination at the same month is not a second visit.
        repeat = self.visit_month[rows] >= month
        self.visit_month[rows[~repeat]] = month
        umn_now |= soft_now & _previous_visit(self.soft, rows, soft_now, repeat)
        self.lmn_seen[rows] |= lmn_now
        self.umn_seen[rows] |= umn_now
        lmn_only = criteria.lmn_only(self.lmn_seen[rows], self.umn_seen[rows])
        since = month - cohort.symptom_onset[rows]
        since = np.where(np.isfinite(since) & (since >= 0), since, np.nan)
        dx, gold = criteria.classify(
            self.lmn_seen[rows], self.umn_seen[rows], since,
            _previous_visit(self.lmn_only, rows, lmn_only, repeat),
        )
        changed = dx != self.diagnosis[rows]
        self.diagnosis[rows] = dx
        return {
            "diagnosis": dx,
            "gold_coast": gold,
            "lmn_regions": self.lmn_seen[rows].sum(axis=1).astype(np.int8),
            "umn_regions": self.umn_seen[rows].sum(axis=1).astype(np.int8),
        }, changed

    def _record(self, rows: np.ndarray, month: float, per_muscle: dict, per_patient: dict) -> None:
        """Append the visit's rows: one per patient (``visits``), one per patient and muscle
        (``muscles``)."""
        ids, n, m = self.ids[rows], len(rows), self.body.n_muscles
        self.last_batch[rows] = len(self.visit_rows)
        self.last_position[rows] = np.arange(n)
        self.visit_rows.append({"patient_id": ids, "month": np.full(n, month), **per_patient})
        self.muscle_rows.append(
            {
                "patient_id": np.repeat(ids, m),
                "month": np.full(n * m, month),
                "muscle_index": np.tile(np.arange(m), n),
                **{key: val.reshape(-1) for key, val in per_muscle.items()},
            }
        )

    def last_findings(self, row: int) -> tuple[dict, dict] | None:
        """The findings of the patient at ``row`` at its latest visit: its ``visits`` row
        (column -> value) and its ``muscles`` rows (column -> (muscles,) array, in body
        order); None before its first visit. Reads the rows already recorded (no copy of the
        tables)."""
        b, k = int(self.last_batch[row]), int(self.last_position[row])
        if b < 0:
            return None
        visit = {key: val[k] for key, val in self.visit_rows[b].items()}
        m = self.body.n_muscles
        muscles = {key: val[k * m : (k + 1) * m] for key, val in self.muscle_rows[b].items()
                   if key not in ("patient_id", "month")}
        return visit, muscles

    # -- helpers ----------------------------------------------------------------------------

    def _mune_mean_smup(self, state, rows, cmap, pick, size) -> np.ndarray:
        """(examined, muscles) MUNE by the interim mean-SMUP method (``mune_method``): ``pick``
        and ``size`` are :class:`VisitNoise`'s ``smup_pick`` and ``smup_size``."""
        body = self.body
        out = np.full_like(cmap, np.nan)
        for i in np.flatnonzero(self.mune_muscles):
            sl = slice(body.start[i], body.start[i + 1])
            out[:, i] = tests.mune_mean_smup(
                state.fibres[rows, sl],
                state.alive[rows, sl],
                cmap[:, i],
                self.mv_per_fibre[i],
                self.cmap_subject[rows, i],
                pick[:, i],
                size[:, i],
                self.params.smup_cov,
            )
        return out

    def _mune_mscanfit(self, state, rows, month, scale) -> np.ndarray:
        """(examined, muscles) MScanFit MUNE (``mune_method = "mscanfit"``): a CMAP scan of each
        measured muscle, the very scan :meth:`_record_scans` records when it is due (same
        counters, stream ``scan:<month>``), fitted by :func:`mscanfit.fit`."""
        p = self.params
        out = np.full(scale.shape, np.nan)
        j, i = np.nonzero(np.broadcast_to(self.mune_muscles, scale.shape))
        if not len(j):
            return out
        stimulus, amplitude = scans.scan(
            self.thr_sorted, self.thr_order, state.alive, state.fibres, self.body.start,
            rows[j], i, scale[j, i], rnd.starts(self.seed, f"scan:{month:g}", self.ids[rows])[j],
            rs=p.threshold_fluctuation, noise_uv=p.recording_noise_uv, stimuli=p.scan_stimuli,
        )
        out[j, i] = mscanfit.mune(stimulus, amplitude, rs=p.mscanfit_spread)
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


def _previous_visit(
    history: np.ndarray, rows: np.ndarray, now: np.ndarray, repeat: np.ndarray
) -> np.ndarray:
    """A finding at each patient's previous visit; records ``now`` as this visit's.

    ``history[0]`` holds the finding at each patient's last visit, ``history[1]`` at the one
    before it (updated in place); ``repeat`` marks rows examined again at the month of their
    last visit, whose previous visit is then the one before it."""
    last, before = history
    flag = repeat.reshape(repeat.shape + (1,) * (now.ndim - 1))
    prev = np.where(flag, before[rows], last[rows])
    new = rows[~repeat]
    before[new] = last[new]
    last[rows] = now
    return prev


#: The columns the examiner fills in the ``muscles`` table, in order.
_MUSCLE_COLUMNS = (
    "cmap_mv",
    "mune",
    "munix",
    "mrc_grade",
    "reflex_grade",
    "tone",
    "wasting",
    "fasciculations_per_min",
    "fibrillation_grade",
    "mup_amplitude_uv",
    "cmct_ms",
    "mep_present",
    "units_alive_fraction",
    "fibres_fraction",
    "strength_fraction",
)

__all__ = ["Examiner", "SubjectNoise", "VisitNoise", "subject_noise", "visit_noise"]
