"""Scenario files: TOML in, a typed and frozen :class:`Scenario` out.

Every section is a frozen dataclass whose fields are the allowed keys; field metadata states the
valid range. :func:`load_scenario` walks the TOML against these classes
(:mod:`progression.validation`), so every error names the file, the key path and what was
expected, on one line, and an unknown key (a typo) is an error. A parameter that differs across
patients is a :class:`~progression.distributions.Dist`: a number (the same for everyone) or an
inline table such as ``{ dist = "lognormal", median = 0.05, sigma = 0.5 }``.

This module is the schema: the sections with their documented fields, the checks that span
several keys, and loading, overriding and hashing a scenario.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from progression import body as body_map
from progression.distributions import Dist  # also imported from here, with ScenarioError
from progression.processes import lmn as lmn_patterns
from progression.validation import (
    ScenarioError,
    build,
    canonical,
    invalid,
    key_path,
    parse_toml,
    plain,
    set_path,
    show,
)
from progression.validation import field_range as _range  # short: it is on almost every field

# ---------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True)
class Arm:
    """One arm of the cohort. Every patient is simulated in every arm (common random numbers).

    Attributes:
        treatment: a ``[treatments.<name>]`` name, or ``none`` (placebo or natural history).
    """

    treatment: str = "none"


@dataclass(frozen=True)
class Correlations:
    """Correlated patient traits: a Gaussian copula over per-patient parameters.

    Each named parameter keeps its own distribution; the standard normal behind each patient's
    value (for a parameter drawn several times per patient, such as the spread delay of every
    pair of neighbouring compartments: the patient's mean of those normals, rescaled) is
    correlated with the others' by ``matrix``. So one patient's disease can be fast in every
    respect at once, while every marginal distribution, every patient's random numbers and the
    tables' independence of chunking stay as they are.

    Attributes:
        parameters: key paths of per-patient parameters (distributions), e.g.
            ``disease.lmn.speed`` or ``disease.lmn.spread_delay_months``.
        matrix: correlations of their normal scores, rows and columns in the order of
            ``parameters``: symmetric, ones on the diagonal, positive definite.
    """

    parameters: tuple[str, ...] = field(metadata={"nonempty": True})
    matrix: tuple[tuple[float, ...], ...] = field(metadata=_range(-1, 1, unit=""))


@dataclass(frozen=True)
class Cohort:
    """Who is simulated.

    Attributes:
        patients: cohort size (patients per arm).
        seed: scenario seed; a patient's randomness depends only on (seed, patient id).
        arms: arm name -> :class:`Arm`.
        age_years: age at the start of degeneration (years). Source: onset ages 62 +/- 11
            years (Chio 2013, Italian register), less a presymptomatic year
            (``als_natural_history.toml``).
        onset_region: share of patients whose disease starts in each region (sums to 1): an
            input. Source: US National ALS Registry, limb 72%, bulbar 22%, trunk 6%.
        correlations: correlated per-patient parameters (``[cohort.correlations]``), or None.
    """

    patients: int = field(metadata=_range(1, 10**9, unit="patients"))
    seed: int = field(metadata=_range(0, 2**63 - 1, unit=""))
    age_years: Dist = field(metadata=_range(0, 120, unit="years"))
    onset_region: dict[str, float] = field(
        metadata={"keys": body_map.REGIONS, "lo": 0, "hi": 1, "unit": "fraction"}
    )
    arms: dict[str, Arm] = field(default_factory=lambda: {"natural_history": Arm()})
    correlations: Correlations | None = field(default=None, metadata={"hash_if_set": True})


@dataclass(frozen=True)
class Phenotype:
    """A latent phenotype: which disease processes a patient has.

    Attributes:
        share: fraction of the cohort (the shares sum to 1). Source: Norris 1993 (California,
            708 patients: sporadic ALS 86%, familial 7%, PLS 4%, PMA 2%; see
            ``mnd_population.toml``).
        processes: among ``lmn`` and ``umn`` (PMA: lmn; PLS: umn; ALS: both).
        speed_factor: multiplies the speed of every process of this phenotype.
    """

    share: float = field(metadata=_range(0, 1, unit="fraction"))
    processes: tuple[str, ...] = field(metadata={"choices": ("lmn", "umn"), "nonempty": True})
    speed_factor: float = field(default=1.0, metadata=_range(0, None, open_lo=True, unit="factor"))


@dataclass(frozen=True)
class Time:
    """Simulated span. Month 0 is the start of degeneration.

    Attributes:
        duration_months: months simulated from the start of degeneration.
        step_months: the time step: a divisor of a month (1, 0.5, 0.25, ...) or whole months.
            Threshold deaths are exact for any step; reinnervation and atrophy converge as it
            shrinks.
    """

    duration_months: float = field(metadata=_range(0, 1200, open_lo=True, unit="months"))
    step_months: float = field(default=1.0, metadata=_range(0, 3, open_lo=True, unit="months"))


@dataclass(frozen=True)
class Visits:
    """Visit schedule.

    Attributes:
        start: ``symptoms`` (first visit a referral delay after symptom onset) or
            ``degeneration`` (visits from month 0, as in studies of presymptomatic carriers).
        referral_delay_months: symptom onset to first visit (months). Source: onset to first
            neurologist 7.9 months (Vazquez-Costa 2021), first examination 14.3 +/- 9.7 months
            (Fujimura-Kiyono 2011).
        interval_months: months between visits (whole months); ALS clinics see patients every 3.
    """

    interval_months: int = field(metadata=_range(1, 120, unit="months"))
    start: str = field(default="symptoms", metadata={"choices": ("symptoms", "degeneration")})
    referral_delay_months: Dist = field(
        default_factory=lambda: Dist.constant(0.0), metadata=_range(0, 600, unit="months")
    )


@dataclass(frozen=True)
class MuscleOverride:
    """Per-muscle changes to the default body map (both sides); a key left out keeps the body
    map's value (:mod:`progression.body`, with its sources in ``bodymap.md``).

    Attributes:
        units: motor units in a healthy adult. Source: MUNE and MUNIX reference values
            (Cao 2020, n=150; McMaster automated MUNE 1991).
        innervation_ratio: mean muscle fibres per unit. Source: Gath & Stalberg 1981 (biceps
            209, TA 329); Feinstein 1955 (anatomical counts).
        size_range: ratio of the largest to the smallest unit of the pool. Source: Fuglevand
            1993 (about 100).
        vulnerability: relative LMN hazard of the muscle (split hand: APB and FDI above ADM).
            Source: MU half-life longer in ADM than in APB (Baumann 2012).
        axon_length_cm: cell body to motor point; the length-dependent pattern reads it.
            Source: body-segment proportions of adult height (bodymap.md, derived).
        cmap_mv: healthy CMAP amplitude. Source: Buschbacher 1999 (APB 10.2 +/- 3.6 mV,
            ADM 11.6 +/- 2.1 mV) and bodymap.md A2.
    """

    units: int | None = field(default=None, metadata=_range(2, 5000, unit="motor units"))
    innervation_ratio: float | None = field(
        default=None, metadata=_range(1, 10000, unit="fibres per unit")
    )
    size_range: float | None = field(default=None, metadata=_range(1, 1000, unit="ratio"))
    vulnerability: float | None = field(default=None, metadata=_range(0, 100, unit="factor"))
    axon_length_cm: float | None = field(default=None, metadata=_range(1, 200, unit="cm"))
    cmap_mv: float | None = field(default=None, metadata=_range(0, 100, open_lo=True, unit="mV"))


_MUSCLE_NAMES = tuple(dict.fromkeys(m.name for m in body_map.default_muscles()))


@dataclass(frozen=True)
class BodySpec:
    """Which muscles to simulate (default: all of the body map) and changes to them.

    Attributes:
        muscles: the body map's muscles to simulate (each on every side it has).
        overrides: muscle name -> :class:`MuscleOverride`.
    """

    muscles: tuple[str, ...] = field(
        default=_MUSCLE_NAMES, metadata={"choices": _MUSCLE_NAMES, "nonempty": True}
    )
    overrides: dict[str, MuscleOverride] = field(
        default_factory=dict, metadata={"keys": _MUSCLE_NAMES}
    )


@dataclass(frozen=True)
class _Process:
    """What every degenerative process has: a speed, an onset, and spread between compartments.

    Attributes:
        speed: cumulative hazard per month of a neuron of weight 1 (1/month). Source:
            exponential unit loss within a region (Baumann 2012); MUNIX falls 2.4-4.2% per
            month per muscle in ALS (Neuwirth 2015), of which reinnervation hides part.
        onset_month: months from the start of degeneration to the process's onset.
        spread_delay_months: the patient's delay from the onset of one region to the next
            (rostro-caudal): one draw per patient, so that it can be correlated with the
            patient's speed (``[cohort.correlations]``).
        region_delay_sigma: how much the delays between different pairs of neighbouring
            regions of one patient scatter around the patient's delay (log SD of a lognormal
            factor of median 1, per pair; 0: every pair takes the patient's delay).
        contralateral_delay_months: one side of a region to the other side (drawn per pair).
        noncontiguous_probability: chance per patient of one jump to a non-neighbouring region.
        bulbar_resistance: spread from the spinal cord into the bulbar region takes this many
            times the drawn delay; spread from the bulbar region down takes the delay itself.
    """

    speed: Dist = field(metadata=_range(0, None, unit="1/month"))
    onset_month: Dist = field(
        default_factory=lambda: Dist.constant(0.0), metadata=_range(0, 600, unit="months")
    )
    spread_delay_months: Dist = field(
        default_factory=lambda: Dist.constant(6.0), metadata=_range(0, 1200, unit="months")
    )
    region_delay_sigma: float = field(default=0.0, metadata=_range(0, 3, unit="log SD"))
    contralateral_delay_months: Dist = field(
        default_factory=lambda: Dist.constant(3.0), metadata=_range(0, 1200, unit="months")
    )
    noncontiguous_probability: float = field(default=0.0, metadata=_range(0, 1, unit="probability"))
    bulbar_resistance: float = field(default=1.0, metadata=_range(0.1, 10, unit=""))


@dataclass(frozen=True)
class LMN(_Process):
    """Lower motor neuron death: a hazard over neurons (see :mod:`progression.processes.lmn`).

    Attributes (besides those of every process):
        pattern: ``focal`` (ALS: focal onset and contiguous spread), ``segmental`` (anterior
            horn cells of chosen segments, as in spinal muscular atrophy or polio) or
            ``length_dependent`` (distal axons first): :data:`progression.processes.lmn.PATTERNS`.
        size_exponent: nu in ``w = (size / mean size) ** nu``: large (fast-fatigable) units
            die first.
        segments: (segmental) the segments affected.
        length_exponent: (length_dependent) gamma in ``(L / reference_length_cm) ** gamma``.
        reference_length_cm: (length_dependent) axon length with weight 1 (cm).
        level_delay_months: months for a spreading (``focal``) degeneration to pass from one
            spinal level to the next within a region (:data:`progression.body.LEVELS`); 0
            starts a whole compartment at once.
    """

    pattern: str = field(default="focal", metadata={"choices": tuple(lmn_patterns.PATTERNS)})
    size_exponent: float = field(default=1.0, metadata=_range(0, 5, unit=""))
    segments: tuple[str, ...] = field(default=(), metadata={"pattern_only": "segmental"})
    length_exponent: float = field(
        default=3.0, metadata=_range(0, 20, pattern_only="length_dependent", unit="")
    )
    reference_length_cm: float = field(
        default=100.0,
        metadata=_range(1, 300, open_lo=True, pattern_only="length_dependent", unit="cm"),
    )
    level_delay_months: Dist = field(
        default_factory=lambda: Dist.constant(0.0),
        metadata=_range(0, 120, unit="months"),
    )


@dataclass(frozen=True)
class UMN(_Process):
    """Upper motor neuron (corticospinal and corticobulbar tract) loss, fastest axons first.

    Attributes (besides those of every process):
        pattern: ``focal`` (onset in one compartment, spread to its neighbours).
        velocity_exponent: fastest axons most vulnerable: ``w = (v / mean v) ** exponent``.
        axons: axons sampled per tract (a sample, not the anatomy).
        drive_weakness: a_u, weakness from lost drive: force x
            ``1 - a_u * (1 - integrity) ** drive_exponent``. A complete corticospinal lesion
            leaves little useful voluntary force (PLS patients end up anarthric and unable to
            walk): 0.9 in the shipped scenarios.
        drive_exponent: how the weakness grows with the tract lost: 1 in proportion, 2 (the
            shipped scenarios) with a reserve, a partial loss weakening little (the surviving
            corticospinal and parallel descending pathways make up for it).
    """

    pattern: str = field(default="focal", metadata={"choices": ("focal",)})
    velocity_exponent: float = field(default=2.0, metadata=_range(0, 10, unit=""))
    axons: int = field(default=100, metadata=_range(10, 10000, unit="axons per tract"))
    drive_weakness: float = field(default=0.5, metadata=_range(0, 1, unit="fraction"))
    drive_exponent: float = field(default=1.0, metadata=_range(1, 4, unit=""))


@dataclass(frozen=True)
class Disease:
    """The disease processes; a phenotype uses a subset of them."""

    lmn: LMN | None = None
    umn: UMN | None = None


@dataclass(frozen=True)
class Reinnervation:
    """Collateral reinnervation and denervation atrophy.

    Attributes:
        capacity: c_max, largest size of a unit over its healthy size. Source: surviving
            units grow to 5-8 times their size (post-polio reviews; PMC6579668).
        time_constant_months: tau_r, orphans are adopted at rate 1/tau_r (months). Source: cat
            tension recovery, tau 1-2 months (Gordon 1982, J Physiol 323:307).
        sick_exponent: q, sprouting x ``(1 - sickness) ** q``: sick units sprout less.
        atrophy_window_months: W, orphans not adopted within W months atrophy (months).
            Source: denervated fibres not reinnervated within about a year atrophy (textbook
            consensus).
    """

    capacity: Dist = field(metadata=_range(1, 50, unit="x healthy size"))
    time_constant_months: Dist = field(metadata=_range(0, None, open_lo=True, unit="months"))
    sick_exponent: float = field(default=2.0, metadata=_range(0, 20, unit=""))
    atrophy_window_months: float = field(default=12.0, metadata=_range(1, 240, unit="months"))


@dataclass(frozen=True)
class Excitability:
    """Neuronal excitability and fasciculations (MODEL.md section 6).

    A living unit's margin (mV) between resting potential and threshold is
    ``margin_mv * (1 - sickness) ** sickness_exponent``; its spontaneous discharge rate is
    ``max_rate_per_min * exp(-margin**2 / (2 * noise_mv**2))``, times
    ``(fibres / healthy fibres) ** enlargement_exponent``: ectopic discharges arise mostly in
    the distal axon and its terminal branches, which collateral sprouting multiplies, and an
    enlarged unit's discharge is the more readily seen (0: size does not matter).

    Attributes:
        margin_mv: a healthy unit's margin between resting potential and threshold (mV).
        sickness_exponent: how steeply the margin narrows as the neuron sickens.
        noise_mv: membrane noise that lets a discharge escape across the margin (mV).
        max_rate_per_min: discharge rate of a unit with no margin left, per minute; the shipped
            scenarios set it so a healthy biceps fasciculates about 0.07 times a minute.
        enlargement_exponent: discharges scale with ``(fibres / healthy fibres)`` to this power.
            Source: proximal, time-locked fasciculation potentials are a minority in
            reinnervated ALS muscle (de Carvalho & Swash 2013, JAMA Neurol 70:1562).
    """

    margin_mv: float = field(default=10.0, metadata=_range(0, 50, open_lo=True, unit="mV"))
    sickness_exponent: float = field(default=1.0, metadata=_range(0, 10, unit=""))
    noise_mv: float = field(default=2.5, metadata=_range(0, 50, open_lo=True, unit="mV"))
    max_rate_per_min: float = field(default=1.0, metadata=_range(0, 100, unit="1/min"))
    enlargement_exponent: float = field(default=0.0, metadata=_range(0, 5, unit=""))


@dataclass(frozen=True)
class Symptoms:
    """Emergent symptom onset: a region's function (strength fraction) falls below a threshold.

    Attributes:
        function_threshold: the patient's threshold: a region whose function (fraction of
            healthy strength) falls below it becomes symptomatic (chosen, no published figure:
            weakness is noticed once a good part of the strength is gone, as grade 5 on the
            MRC scale hides large losses).
    """

    function_threshold: Dist = field(
        default_factory=lambda: Dist("normal", (("mean", 0.75), ("sd", 0.05)), 0.3, 0.95),
        metadata=_range(0, 1, unit="fraction of healthy"),
    )


@dataclass(frozen=True)
class Respiration:
    """Respiratory failure when respiratory strength (fraction of healthy) falls below a threshold.

    Attributes:
        failure_threshold: respiratory strength at which breathing fails. Source: hypercapnia
            becomes likely below 30% inspiratory strength or VC 55% (Braun 1983); death without
            ventilation comes later, with VC near 30% (0.17 in the shipped scenarios that have
            respiratory failure).
        upper_airway_weight: share of respiratory strength carried by the bulbar muscles (the
            tongue, genioglossus: the upper-airway dilator active in every inspiration, which
            also guards the airway); the rest is the pump (hemidiaphragms and intercostals).
    """

    failure_threshold: Dist = field(
        default_factory=lambda: Dist("normal", (("mean", 0.3), ("sd", 0.05)), 0.05, 0.6),
        metadata=_range(0, 1, unit="fraction of healthy"),
    )
    upper_airway_weight: float = field(default=0.0, metadata=_range(0, 1, unit="fraction"))


@dataclass(frozen=True)
class Mortality:
    """Background mortality by age, Gompertz ``mu(x) = a * exp(b * (x - 60))`` (1/year).

    Attributes:
        gompertz_a_per_year: a, the death rate of other causes at age 60 (1/year).
        gompertz_b_per_year: b, how fast that rate grows with each year of age (1/year).
    """

    gompertz_a_per_year: float = field(default=0.008, metadata=_range(0, 1, unit="1/year"))
    gompertz_b_per_year: float = field(default=0.09, metadata=_range(0, 1, unit="1/year"))


@dataclass(frozen=True)
class ScanRecording:
    """Which full CMAP scans to record into the ``scans`` table (default: none).

    Attributes:
        muscles: muscle names whose scans are recorded (every simulated side).
        every_nth_visit: record at a patient's 1st visit and every n-th visit after it.
    """

    muscles: tuple[str, ...] = field(default=(), metadata={"choices": _MUSCLE_NAMES})
    every_nth_visit: int = field(default=1, metadata=_range(1, 1000, unit="visits"))


@dataclass(frozen=True)
class Exam:
    """Measurement noise and method settings of the examinations (exam/ modules document use).

    A setting's source follows its description; "chosen, no published figure" says there is
    none. Settings ending in ``_subject_sd`` (and ``cmap_subject_cov``) are a person's own
    level, drawn once; the others are drawn afresh at every visit.

    Attributes:
        cmap_cov: CMAP test-retest coefficient of variation.
        cmap_subject_cov: between-person spread of healthy CMAP (lognormal sigma).
        munix_cov: MUNIX test-retest CoV (Neuwirth 2016: 14%).
        munix_population_cov: between-person CoV of healthy MUNIX, test-retest noise included;
            a person's own level takes what ``munix_cov`` leaves. SD over mean 0.23 for APB
            (191 +/- 44), 0.22 ADM, 0.20 biceps, 0.26 TA (Cao 2020 Muscle Nerve, n=150).
        mune_method: ``incremental`` (McComas incremental stimulation on the simulated
            stimulus-response recording, :mod:`progression.exam.scans`), ``mscanfit`` (a model
            fit of a simulated CMAP scan of ``scan_stimuli`` stimuli in the manner of MScanFit,
            Bostock 2016, :mod:`progression.exam.mscanfit`; tens of milliseconds per muscle and
            visit, so limit ``mune_muscles``) or ``mean_smup`` (the interim method: CMAP over
            the mean SMUP of randomly sampled units).
        mscanfit_spread: relative spread of threshold (SD over threshold) that the MScanFit
            model gives every unit (the simulated axons' is ``threshold_fluctuation``; 1-2% in
            the MScanFit model, Bostock 2016; chosen 1.5%).
        mune_muscles: muscles whose MUNE is measured (default: every muscle; elsewhere
            ``mune`` is null). Incremental MUNE is the costliest examination (about 5
            microseconds per muscle and visit); a clinic measures a few muscles (APB, ADM,
            biceps, TA, EDB).
        mune_increments: increments counted by incremental stimulation (McComas: about 10).
        stimulus_step: relative rise of the stimulus from one stimulus to the next (incremental).
        increment_detection_sd: a response is a new increment when it differs from every level
            seen by more than this many recording-noise SDs.
        threshold_spread: log-SD of axonal stimulation thresholds across a muscle's pool.
        threshold_fluctuation: stimulus-to-stimulus threshold fluctuation (relative SD).
        recording_noise_uv: surface recording noise SD (microvolts).
        scan_stimuli: stimuli of a recorded CMAP scan.
        scans: which scans to record (:class:`ScanRecording`).
        mune_sample_units: single units sampled by the MUNE (mean SMUP) method.
        smup_cov: CoV of one single motor unit potential measurement (mean SMUP method).
        fasciculation_minutes: observation at rest over which fasciculations are counted
            (minutes); the count is Poisson, so a longer look is a less noisy rate. Observing
            for up to 90 s may be needed to see a single fasciculation with near certainty
            (Mills, "Detecting fasciculations in amyotrophic lateral sclerosis: duration of
            observation required", needle EMG, 53 muscles of 19 patients); with high-density
            surface EMG 2 minutes record five with probability about 0.95 (J NeuroEng Rehabil
            2012 9:78, 29 muscles of 11 patients).
        fibrillation_sd: log-normal noise on the orphan fraction the needle reads, before
            grading fibrillations 0-4 (chosen, no published figure).
        mup_sd: log-normal noise on the needle MUP amplitude (chosen, no published figure; for
            scale, healthy TA mean MUP amplitude is 662 +/- 92 microvolts between persons, a
            14% CoV that bounds the test-retest noise, JNNP control table of the de Carvalho
            group; the intertrial 95% limits of the mean duration of 20 biceps MUAPs are +/-22%,
            "Quantitative motor unit analysis: the effect of sample size", 21 normal subjects).
        rmt_hand_percent: mean healthy resting motor threshold for hand muscles (% of maximal
            stimulator output, MSO): APB 47.31 +/- 8.06% (Jitsakulchaidej 2022 BMC Neurol,
            n=48, who cite Triggs 46.3 +/- 7.2% and Rossini 39-46%); also the bulbar and trunk
            tracts' (:mod:`progression.exam.tms`).
        rmt_leg_percent: mean healthy RMT for foot muscles (% MSO): EDB 60.37 +/- 8.74%
            (Jitsakulchaidej 2022; TA 60-80%, Rossini): the leg area lies deeper.
        rmt_subject_sd: a person's own RMT around the mean (% MSO; one draw per person for hand
            and leg): the published SDs 8.06 (APB) and 8.74 (EDB) (Jitsakulchaidej 2022).
        rmt_sd: visit-to-visit (test-retest) noise of the measured RMT (% MSO): test-retest
            r = 0.826 in 93 healthy adults retested after about a month (J Neurol Sci 2016,
            "test-retest reliability of single and paired pulse TMS parameters"), so
            8.4 * sqrt(1 - 0.826) = 3.5.
        tms_intensity_rmt: stimulus for the MEP latency, times the measured RMT and at most
            maximal output (Jitsakulchaidej 2022 recorded at 120% and 140% MT).
        mep_saturation_rmt: intensity (times RMT) at which recruitment of the corticospinal
            volley saturates; the MEP stimulus-response curve of 176 subjects has its midpoint
            at 127.5 +/- 11.3% RMT (Clin Neurophysiol 2015, PubMed 25792073), so saturation
            near 1.55 (the sigmoid symmetric about its midpoint; bounds 1.3-2).
        mep_threshold_drive: r1, the share of the healthy tract's corticomotoneuronal drive
            that just brings the spinal motoneurons to firing (no published figure; calibrated
            to the published share of ALS patients inexcitable in one or more limbs, 30% of
            133, Dharmadasa 2021, and with an absent MEP or prolonged CMCT, 51% of 63 (Claus
            1995) to 78% (Floyd 2009). With the disease of issue 17's recalibration (ALS UMN
            speed 0.075/month, PLS 0.013) 0.15 gives 0.35 and 0.48 at the first visit and 0.69
            in definite PLS (3,000 patients); the ALS inexcitability and the PLS share pull it
            opposite ways (Validation page). Calibrated again with the UMN weakness reserve
            (``disease.umn.drive_exponent`` 2: the first visit later in the tract loss): 0.15
            -> 0.11, with the volley exponent 4 -> 3, gives 0.31 inexcitable, 0.56 abnormal
            and 0.91 in definite PLS (0.54, 0.67 and 0.97 with 0.15 and 4; 3,000 patients).
        tms_volley_exponent: beta, each axon's drive ``(v / mean v) ** beta``: the fast
            corticomotoneuronal axons of the largest Betz cells make the MEP. Calibrated to the
            published fall of CMCT from 120% to 140% MT, APB 7.8 -> 7.2 ms and EDB 14.3 ->
            13.6 ms (Jitsakulchaidej 2022): 4 gives 0.5 and 1.05 ms (2: 0.8 and 1.7; 6: 0.4 and
            0.8), and a healthy onset velocity near 60 m/s. Calibrated again: 4 -> 3, with r1
            (above), the only setting found that brings the ALS inexcitability (0.42 with r1 0.11
            and 4) into its range; the fall of CMCT with intensity then fits the hand better
            and the foot worse (between 2's and 4's figures).
        cmct_cov: visit-to-visit CMCT noise over the muscle's healthy CMCT: intra-individual
            CMCT CoV 11-15% across 3 days (Samii 1998 Muscle Nerve 21:1445, 5 subjects); a
            person's own offset takes what it leaves of the published between-person SD
            (hand 1.3 ms, foot 2.5 ms: :data:`progression.exam.tms.CMCT_SD_MS`).
        reflex_sd: rater noise on reflex grade (grades).
        reflex_subject_sd: a person's own tendon-reflex level (grades; chosen, no published
            figure).
        jaw_sd: rater noise on the jaw-jerk score (grades; chosen, no published figure).
        jaw_subject_sd: a person's own jaw-jerk level (grades; chosen, no published figure;
            the healthy jaw jerk is slight or barely present, :data:`signs.JAW_HEALTHY`).
        tone_sd: rater noise on the log of the resistance felt (tract loss read larger, units
            lost smaller: :func:`progression.exam.signs.tone`). Calibrated so that two raters
            at the same visits of the ALS natural-history clinic agree on spastic, normal or
            flaccid tone with Cohen's kappa 0.51: the Modified Ashworth Scale's inter-rater
            kappa 0.514 (30 hemiplegic patients, 2 physiotherapists, NeuroRehabilitation
            2008;23:231), and "moderate" (0.41-0.60) tone agreement between neurologists
            (Thaller & Hughes 2014 Clin Med 14:264, 30 patients). Recalibrated 0.49 -> 0.31
            when the tract loss came to be felt through the units left (issue 17).
        wasting_sd: rater noise on the log of the bulk lost. Calibrated to kappa 0.85 between
            two raters at the same visits: inspection, muscle bulk and wasting included, had
            "almost perfect" (0.81-1.00) agreement between neurologists (Thaller & Hughes 2014
            Clin Med 14:264).
        wasting_subject_sd: a person's habitus, on the log of the bulk lost: how visible a loss
            is in them (fat hides it), shared by every rater and visit (chosen, no published
            figure).
        dysarthria_sd: listener noise on the log of each component of dysarthria (bulbar
            fibres lost, corticobulbar tract lost), drawn for each apart. Calibrated to
            kappa 0.32 on flaccid, spastic or mixed at the visits with dysarthria: neurologists
            classifying dysarthria type from recordings alone agreed with kappa 0.16-0.32
            (Fonville 2008 J Neurol 255:1545, 100 patients; at the bedside the other signs
            inform the type, so the upper end).
        pba_sd: visit-to-visit noise on the log of the corticobulbar loss behind pseudobulbar
            affect, in susceptible patients. Calibrated to the test-retest reliability 0.88
            of the Center for Neurologic Study-Lability Scale (NINDS Common Data Elements,
            CNS-LS for ALS): the correlation of two readings of the log score over the visits
            of susceptible patients with corticobulbar loss (0.23; 0.28 before the disease's
            recalibration in issue 17, which widened the spread of that loss).
        svc_cov: SVC test-retest CoV.
        svc_subject_sd: a person's healthy vital capacity around 100% predicted (percentage
            points; chosen a little narrower than published spreads: FVC 109 +/- 12% predicted
            in 31 healthy adults, ERJ table on Hankinson reference values; the usual lower limit
            of normal, 80% predicted, at mean - 1.645 SD implies an SD near 12).
        mrc_sd: rater noise on log strength at MRC thresholds.
        alsfrs_subject_sd: a person's own shift of each ALSFRS-R item's thresholds (fraction of
            strength; chosen, no published figure: it makes the total fall in single-point
            steps at different times in different patients, MODEL.md section 7).
        alsfrs_visit_sd: visit-to-visit noise on the same thresholds (fraction of strength;
            chosen, no published figure).
    """

    cmap_cov: float = field(default=0.05, metadata=_range(0, 1, unit="fraction"))
    cmap_subject_cov: float = field(default=0.2, metadata=_range(0, 2, unit="log SD"))
    munix_cov: float = field(default=0.14, metadata=_range(0, 1, unit="fraction"))
    munix_population_cov: float = field(
        default=0.23,
        metadata=_range(0, 1, unit="fraction"),
    )
    mune_method: str = field(
        default="incremental", metadata={"choices": ("incremental", "mscanfit", "mean_smup")}
    )
    mscanfit_spread: float = field(default=0.015, metadata=_range(0.001, 0.1, unit="fraction"))
    mune_muscles: tuple[str, ...] = field(
        default=_MUSCLE_NAMES, metadata={"choices": _MUSCLE_NAMES}
    )
    mune_increments: int = field(default=10, metadata=_range(1, 50, unit="increments"))
    stimulus_step: float = field(default=0.002, metadata=_range(0.0001, 0.1, unit="fraction"))
    increment_detection_sd: float = field(default=2.5, metadata=_range(0.5, 20, unit="noise SDs"))
    threshold_spread: float = field(default=0.12, metadata=_range(0, 1, unit="log SD"))
    threshold_fluctuation: float = field(
        default=0.015, metadata=_range(0.001, 0.1, unit="fraction")
    )
    recording_noise_uv: float = field(default=10.0, metadata=_range(0.1, 1000, unit="uV"))
    scan_stimuli: int = field(default=500, metadata=_range(10, 4000, unit="stimuli"))
    scans: ScanRecording = field(default_factory=ScanRecording)
    mune_sample_units: int = field(default=10, metadata=_range(1, 100, unit="units"))
    smup_cov: float = field(default=0.1, metadata=_range(0, 1, unit="fraction"))
    fasciculation_minutes: float = field(
        default=2.0, metadata=_range(0, 60, open_lo=True, unit="minutes")
    )
    fibrillation_sd: float = field(default=0.3, metadata=_range(0, 2, unit="log SD"))
    mup_sd: float = field(default=0.1, metadata=_range(0, 2, unit="log SD"))
    rmt_hand_percent: float = field(default=47.3, metadata=_range(20, 90, unit="% MSO"))
    rmt_leg_percent: float = field(default=60.4, metadata=_range(20, 95, unit="% MSO"))
    rmt_subject_sd: float = field(default=8.4, metadata=_range(0, 20, unit="% MSO"))
    rmt_sd: float = field(default=3.5, metadata=_range(0, 20, unit="% MSO"))
    tms_intensity_rmt: float = field(default=1.2, metadata=_range(1, 2, unit="x RMT"))
    mep_saturation_rmt: float = field(default=1.55, metadata=_range(1.3, 2, unit="x RMT"))
    mep_threshold_drive: float = field(
        default=0.11, metadata=_range(0.1, 0.8, open_lo=True, unit="fraction of healthy drive")
    )
    tms_volley_exponent: float = field(default=3.0, metadata=_range(0, 10, unit=""))
    cmct_cov: float = field(default=0.13, metadata=_range(0, 0.5, unit="fraction"))
    reflex_sd: float = field(default=0.15, metadata=_range(0, 2, unit="grades"))
    reflex_subject_sd: float = field(default=0.15, metadata=_range(0, 2, unit="grades"))
    jaw_sd: float = field(default=0.1, metadata=_range(0, 2, unit="grades"))
    jaw_subject_sd: float = field(default=0.15, metadata=_range(0, 2, unit="grades"))
    tone_sd: float = field(default=0.31, metadata=_range(0, 3, unit="log SD"))
    wasting_sd: float = field(default=0.38, metadata=_range(0, 3, unit="log SD"))
    wasting_subject_sd: float = field(default=0.2, metadata=_range(0, 3, unit="log SD"))
    dysarthria_sd: float = field(default=0.85, metadata=_range(0, 3, unit="log SD"))
    pba_sd: float = field(default=0.23, metadata=_range(0, 3, unit="log SD"))
    svc_cov: float = field(default=0.05, metadata=_range(0, 1, unit="fraction"))
    svc_subject_sd: float = field(default=10.0, metadata=_range(0, 50, unit="% predicted"))
    mrc_sd: float = field(default=0.1, metadata=_range(0, 2, unit="log strength"))
    alsfrs_subject_sd: float = field(
        default=0.04, metadata=_range(0, 0.5, unit="fraction of strength")
    )
    alsfrs_visit_sd: float = field(
        default=0.02, metadata=_range(0, 0.5, unit="fraction of strength")
    )


@dataclass(frozen=True)
class Treatment:
    """Multiplicative effects on process rates, from ``start`` on.

    Attributes:
        lmn_speed: multiplies the LMN hazard.
        umn_speed: multiplies the UMN hazard.
        reinnervation_rate: multiplies the adoption rate 1/tau_r.
        start: ``first_visit``, ``enrolment`` (randomisation in a [trial]) or a month from
            the start of degeneration.
    """

    lmn_speed: float = field(default=1.0, metadata=_range(0, 100, unit="factor"))
    umn_speed: float = field(default=1.0, metadata=_range(0, 100, unit="factor"))
    reinnervation_rate: float = field(default=1.0, metadata=_range(0, 100, unit="factor"))
    start: str | float = field(
        default="first_visit", metadata={"unit": "months", "choices": ("first_visit", "enrolment")}
    )


@dataclass(frozen=True)
class Eligibility:
    """Who a trial enrols, judged at each clinic visit (screening) from that visit's findings.

    Attributes:
        diagnoses: diagnoses accepted (the visit's ``diagnosis`` column), e.g. ``["ALS"]``.
        gold_coast: also accept a patient meeting the Gold Coast criteria.
        max_months_since_onset: symptom onset at most this long ago (months).
        min_alsfrs_r: ALSFRS-R total at least this.
        max_alsfrs_r: ALSFRS-R total at most this (some trials require some disability).
        min_svc_percent: slow vital capacity at least this (% predicted).
        min_age_years, max_age_years: age at screening (years).
    """

    diagnoses: tuple[str, ...] = field(
        default=("ALS",), metadata={"choices": ("ALS", "PMA", "PLS"), "nonempty": False}
    )
    gold_coast: bool = False
    max_months_since_onset: float = field(default=24.0, metadata=_range(0, 1200, unit="months"))
    min_alsfrs_r: int = field(default=0, metadata=_range(0, 48, unit="points"))
    max_alsfrs_r: int = field(default=48, metadata=_range(0, 48, unit="points"))
    min_svc_percent: float = field(default=0.0, metadata=_range(0, 200, unit="% predicted"))
    min_age_years: float = field(default=18.0, metadata=_range(0, 120, unit="years"))
    max_age_years: float = field(default=120.0, metadata=_range(0, 120, unit="years"))


@dataclass(frozen=True)
class Trial:
    """A randomised trial run inside the cohort: screening, enrolment, trial visits, dropout.

    Every patient exists in every arm (common random numbers); screening is the same in all
    arms because nothing differs before randomisation. Enrolment (randomisation) is trial month
    0; trial visits follow every ``visit_interval_months`` for ``duration_months``, then the
    clinic schedule resumes.

    Attributes:
        eligibility: the inclusion criteria.
        visit_interval_months: months between trial visits.
        duration_months: trial follow-up after randomisation (months).
        dropout_per_month: rate of leaving the trial for reasons unrelated to outcome
            (missing at random), on top of death (1/month).
    """

    duration_months: float = field(metadata=_range(1, 600, unit="months"))
    visit_interval_months: int = field(default=1, metadata=_range(1, 60, unit="months"))
    dropout_per_month: float = field(default=0.0, metadata=_range(0, 1, unit="1/month"))
    eligibility: Eligibility = field(default_factory=Eligibility)


#: Sweep designs (see :mod:`progression.studies.sweep`).
SWEEP_METHODS = ("grid", "sobol", "latin", "morris")


@dataclass(frozen=True)
class SweepParameter:
    """One swept parameter: ``values`` (a grid) or ``low`` and ``high`` (a range to sample).

    Attributes:
        values: the grid's values (method ``grid``), in the swept key's unit.
        low: lower end of the range sampled (other methods).
        high: upper end of the range sampled (other methods).
    """

    values: tuple[float, ...] = field(default=(), metadata={"unit": "the swept key's"})
    low: float | None = field(default=None, metadata={"unit": "the swept key's"})
    high: float | None = field(default=None, metadata={"unit": "the swept key's"})


@dataclass(frozen=True)
class Sweep:
    """A parameter sweep for ``progression sweep`` (:mod:`progression.studies.sweep`); a run
    ignores it.

    Attributes:
        parameters: key path (e.g. ``disease.lmn.speed.median``) -> :class:`SweepParameter`.
        method: ``grid`` (every combination of the values), ``sobol`` (Saltelli's scheme on a
            Sobol sequence: samples x (parameters + 2) points), ``latin`` (Latin hypercube,
            samples points) or ``morris`` (samples trajectories of parameters + 1 points).
        samples: N of the method (sobol: a power of 2).
        levels: grid levels of the Morris design.
        replicates: cohort seeds per point: cohort.seed, cohort.seed + 1, ...
        seed: seed of the sampling design (not of the patients).
    """

    parameters: dict[str, SweepParameter]
    method: str = field(default="grid", metadata={"choices": SWEEP_METHODS})
    samples: int = field(default=8, metadata=_range(1, 10**6, unit=""))
    levels: int = field(default=4, metadata=_range(2, 1000, unit=""))
    replicates: int = field(default=1, metadata=_range(1, 10**4, unit=""))
    seed: int = field(default=0, metadata=_range(0, 2**32 - 1, unit=""))


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: everything a run needs, nothing it computes.

    Attributes:
        name: short title.
        description: a sentence on what the scenario simulates.
        path: the file it came from.
        source_text: the file's text as read.
        overrides: the key-path overrides applied to it (command line, sweep point), in order.
        hash: sha256 of the validated content after overrides (guards ``--resume``).
        text: the scenario as run (see :attr:`text`).
    """

    name: str
    cohort: Cohort
    phenotypes: dict[str, Phenotype]
    time: Time
    visits: Visits
    disease: Disease
    reinnervation: Reinnervation
    description: str = ""
    body: BodySpec = field(default_factory=BodySpec)
    excitability: Excitability = field(default_factory=Excitability)
    symptoms: Symptoms = field(default_factory=Symptoms)
    respiration: Respiration = field(default_factory=Respiration)
    mortality: Mortality = field(default_factory=Mortality)
    exam: Exam = field(default_factory=Exam)
    treatments: dict[str, Treatment] = field(default_factory=dict)
    trial: Trial | None = None
    sweep: Sweep | None = field(default=None, metadata={"hash_if_set": True})
    path: str = field(default="<string>", metadata={"internal": True})
    source_text: str = field(default="", metadata={"internal": True})
    overrides: tuple[tuple[str, Any], ...] = field(default=(), metadata={"internal": True})
    hash: str = field(default="", metadata={"internal": True})

    @functools.cached_property
    def text(self) -> str:
        """The scenario as run: the file's text with the overrides written into it (comments
        and layout kept, a header comment listing them), so that this text alone reproduces
        the scenario and its hash (``RUN/scenario.toml``)."""
        return effective_text(self.source_text, self.overrides, self.path, content_hash(self))

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(self.cohort.arms)

    def treatment_of(self, arm: str) -> Treatment | None:
        name = self.cohort.arms[arm].treatment
        return None if name == "none" else self.treatments[name]

    def muscles(self) -> tuple[body_map.Muscle, ...]:
        """The body map's muscles selected and overridden by the scenario."""
        chosen = [m for m in body_map.default_muscles() if m.name in self.body.muscles]
        over = {
            k: {f: v for f, v in vars(o).items() if v is not None}
            for k, o in self.body.overrides.items()
        }
        return body_map.with_overrides(tuple(chosen), over)


# ---------------------------------------------------------------------------------------------
# Loading and validation

#: The largest scenario file :func:`load_scenario` reads (bytes): 1 MiB, far above any real one.
MAX_SCENARIO_BYTES = 2**20


def load_scenario(
    path: str | Path,
    *,
    patients: int | None = None,
    seed: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> Scenario:
    """Read and validate a scenario file; raise :class:`ScenarioError` on any problem.

    Args:
        path: the TOML file (UTF-8, with or without a byte-order mark; at most
            :data:`MAX_SCENARIO_BYTES`).
        patients, seed: command-line overrides of ``cohort.patients`` and ``cohort.seed``.
        overrides: further key-path overrides, e.g. ``{"disease.lmn.speed.median": 0.05}``.
            A value of ``None`` removes the key (TOML has no null): switching
            ``disease.lmn.pattern`` away from ``segmental`` also needs
            ``{"disease.lmn.segments": None}``.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SCENARIO_BYTES + 1)  # a larger file is refused, not read whole
            size = os.fstat(fh.fileno()).st_size
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read scenario file: {e.strerror or e}") from None
    if len(data) > MAX_SCENARIO_BYTES:
        # A pipe has no size (st_size 0): then say only that it is too large.
        n = str(size) if size > MAX_SCENARIO_BYTES else f"more than {MAX_SCENARIO_BYTES}"
        limit = f"{MAX_SCENARIO_BYTES / 2**20:g} MiB"
        raise ScenarioError(f"{path}: {n} bytes; a scenario file may be at most {limit}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ScenarioError(
            f"{path}: line {line}: expected UTF-8 text, got byte 0x{data[e.start]:02x}"
        ) from None
    text = text.replace("\r\n", "\n")
    all_overrides = dict(overrides or {})
    if patients is not None:
        all_overrides["cohort.patients"] = patients
    if seed is not None:
        all_overrides["cohort.seed"] = seed
    return parse_scenario(text, str(path), all_overrides)


def parse_scenario(text: str, source: str = "<string>", overrides: dict | None = None) -> Scenario:
    """Validate scenario TOML text (see :func:`load_scenario`).

    The hash covers the validated scenario after overrides (every value, defaults included, in
    an order-preserving canonical form), so comments and formatting do not change it, while any
    change that can change a result does (including the order of ``onset_region`` and of the
    phenotypes, which the draws follow).
    """
    raw = parse_toml(text, source)
    if not raw:  # 0 bytes, or only whitespace and comments
        raise ScenarioError(f"{source}: the scenario file is empty")
    for key, value in (overrides or {}).items():
        set_path(raw, key, value, source)
    scenario = build(Scenario, raw, "", source)
    _check(scenario, source)
    return replace(
        scenario,
        path=source,
        source_text=text,
        overrides=tuple((k, plain(v)) for k, v in (overrides or {}).items()),
        hash=content_hash(scenario),
    )


def content_hash(scenario: Scenario) -> str:
    """sha256 hex of the validated content (every value, defaults included, in an
    order-preserving canonical form; not the path, the text or the comments)."""
    text = json.dumps(canonical(scenario), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


OVERRIDES_HEADER = "# The scenario as run: these overrides are written into the text below."


def effective_text(
    text: str, overrides: tuple[tuple[str, Any], ...], source: str = "<string>",
    expected_hash: str | None = None,
) -> str:
    """``text`` with ``overrides`` (key path, value; ``None`` removes) written into its TOML,
    comments and layout kept (tomlkit), under a header comment that lists them.

    With ``expected_hash``, the result is parsed again and must give that hash (a
    :class:`ScenarioError` otherwise), so a run's ``scenario.toml`` always reproduces the run.
    """
    if not overrides:
        return text
    import tomlkit

    doc = tomlkit.parse(text)
    for key, value in overrides:
        set_path(doc, key, value, source)
    listed = "\n".join(
        f"#   {k} = {'(removed)' if v is None else show(v, 200)}" for k, v in overrides
    )
    out = f"{OVERRIDES_HEADER}\n{listed}\n\n{tomlkit.dumps(doc)}"
    if expected_hash is not None and parse_scenario(out, source).hash != expected_hash:
        raise ScenarioError(f"{source}: cannot write the overrides into the scenario text")
    return out


#: Arm names become folder names (``arm=<name>``): letters, digits, ``_`` and ``-`` only.
_ARM_NAME = re.compile(r"[A-Za-z0-9_-]+")
#: The folder name that hive partitioning (polars, pyarrow) reads back as a null value.
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def patient_parameters(s: Scenario) -> list[str]:
    """Key paths of the per-patient parameters the engine draws (each a distribution)."""
    return [k for k, _ in dist_fields(s) if not k.startswith("treatments.")]


def _check_correlations(s: Scenario, source: str) -> None:
    """Names that are per-patient parameters; a symmetric, positive definite correlation matrix
    of matching size with ones on its diagonal."""
    c = s.cohort.correlations
    where = "cohort.correlations"
    known = patient_parameters(s)
    for i, name in enumerate(c.parameters):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise invalid(source, f"{where}.parameters[{i}]",
                          f"a per-patient parameter (a distribution){hint}", name)
    k = len(c.parameters)
    m = np.array(c.matrix, dtype=float) if all(len(r) == k for r in c.matrix) else None
    if m is None or m.shape != (k, k):
        raise invalid(source, f"{where}.matrix",
                      f"a {k} x {k} matrix (one row and column per parameter)")
    if not np.allclose(np.diag(m), 1.0):
        raise invalid(source, f"{where}.matrix", "ones on the diagonal", list(np.diag(m)))
    asym = np.argwhere(np.abs(m - m.T) > 1e-9)
    if len(asym):
        i, j = asym[0]
        raise invalid(source, f"{where}.matrix",
                      f"a symmetric matrix (row {i + 1}, column {j + 1} is {m[i, j]:g}, "
                      f"row {j + 1}, column {i + 1} is {m[j, i]:g})")
    low = float(np.linalg.eigvalsh(m).min())
    if low <= 1e-9:
        raise invalid(source, f"{where}.matrix",
                      f"a positive definite matrix (its smallest eigenvalue is {low:.3g}): "
                      "no set of correlations can be that way at once")


def _check(s: Scenario, source: str) -> None:
    """Checks that span several keys."""
    total = sum(s.cohort.onset_region.values())
    if abs(total - 1) > 1e-6:
        raise invalid(source, "cohort.onset_region", "shares summing to 1", round(total, 6))
    if not s.cohort.arms:
        raise invalid(
            source, "cohort.arms", "at least one arm, e.g. [cohort.arms.natural_history]"
        )
    for arm in s.cohort.arms:
        if not _ARM_NAME.fullmatch(arm):
            raise invalid(
                source,
                key_path("cohort.arms", arm),
                "an arm name of letters, digits, _ and - (it names an output folder)",
            )
        if arm == _HIVE_NULL:
            raise invalid(
                source,
                key_path("cohort.arms", arm),
                f"an arm name other than {_HIVE_NULL} (its folder reads back as a missing arm)",
            )
    if s.cohort.correlations is not None:
        _check_correlations(s, source)
    if not s.phenotypes:
        raise invalid(source, "phenotypes", "at least one [phenotypes.<NAME>] table")
    total = sum(p.share for p in s.phenotypes.values())
    if abs(total - 1) > 1e-6:
        raise invalid(source, "phenotypes", "shares summing to 1", round(total, 6))
    for name, p in s.phenotypes.items():
        for proc in p.processes:
            if getattr(s.disease, proc) is None:
                raise invalid(
                    source,
                    key_path(key_path("phenotypes", name), "processes"),
                    f"a process defined in [disease.{proc}]",
                    proc,
                )
    for arm, a in s.cohort.arms.items():
        if a.treatment != "none" and a.treatment not in s.treatments:
            valid = ", ".join(["none", *s.treatments])
            key = key_path(key_path("cohort.arms", arm), "treatment")
            raise invalid(source, key, f"one of {valid}", a.treatment)
    for name, t in s.treatments.items():
        if t.start == "enrolment" and s.trial is None:
            key = key_path(key_path("treatments", name), "start")
            raise invalid(source, key, "'enrolment' only with a [trial] section", t.start)
    if s.trial is not None:
        e = s.trial.eligibility
        if e.max_alsfrs_r < e.min_alsfrs_r:
            key = "trial.eligibility.max_alsfrs_r"
            raise invalid(source, key, f">= min_alsfrs_r ({e.min_alsfrs_r})", e.max_alsfrs_r)
        if e.max_age_years < e.min_age_years:
            raise invalid(source, "trial.eligibility.max_age_years",
                          f">= min_age_years ({e.min_age_years:g})", e.max_age_years)
    lmn = s.disease.lmn
    if lmn is not None and lmn.pattern == "segmental":
        known = {seg for m in s.muscles() for seg in m.segments}
        if not lmn.segments:
            what = "a non-empty list for pattern 'segmental'"
            raise invalid(source, "disease.lmn.segments", what)
        for seg in lmn.segments:
            if seg not in known:
                what = f"segments among {sorted(known)}"
                raise invalid(source, "disease.lmn.segments", what, seg)
    step = s.time.step_months
    whole = abs(step - round(step)) < 1e-6 if step >= 1 else abs(1 / step - round(1 / step)) < 1e-6
    if not whole:
        raise invalid(
            source,
            "time.step_months",
            "a step that divides a month (1, 0.5, 0.25, ...) or a whole number of months, "
            "so that visits fall on whole months",
            step,
        )
    if step > s.visits.interval_months:
        what = "a step no longer than visits.interval_months"
        raise invalid(source, "time.step_months", what, step)
    if step > s.time.duration_months:
        what = "a step no longer than time.duration_months"
        raise invalid(source, "time.step_months", what, step)
    for name in s.exam.scans.muscles:
        if name not in s.body.muscles:
            raise invalid(source, "exam.scans.muscles", "muscles among body.muscles", name)


def dist_fields(obj: Any, path: str = "") -> typing.Iterator[tuple[str, Dist]]:
    """Every (key path, Dist) in a scenario section, in field order."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        key = key_path(path, f.name)
        if isinstance(value, Dist):
            yield key, value
        elif is_dataclass(value):
            yield from dist_fields(value, key)
