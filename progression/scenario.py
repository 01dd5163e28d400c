"""Scenario files: TOML in, a typed and frozen :class:`Scenario` out.

Every section is a frozen dataclass whose fields are the allowed keys; field metadata states the
valid range. :func:`load_scenario` walks the TOML against these classes, so every error names the
file, the key path and what was expected, on one line, and an unknown key (a typo) is an error.
A parameter that differs across patients is a :class:`Dist`: a number (the same for everyone) or an
inline table such as ``{ dist = "lognormal", median = 0.05, sigma = 0.5 }``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import math
import os
import re
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from progression import body as body_map
from progression import random as rnd
from progression.processes import lmn as lmn_patterns


class ScenarioError(ValueError):
    """A scenario file is wrong; the message is one line naming file, key and expectation.

    Control characters (a newline inside a quoted TOML key, say) are escaped so that the
    message always stays on one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


def _one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped."""
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029\x85]", lambda m: repr(m.group())[1:-1], text)


def _range(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False, **kw):
    """Field metadata for a numeric range (inclusive unless ``open_lo``)."""
    return {"lo": lo, "hi": hi, "open_lo": open_lo, **kw}


def _interval(meta: dict) -> str:
    """A field's range as text, e.g. ``(0, inf]``."""
    lo, hi = meta.get("lo"), meta.get("hi")
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{'(' if meta.get('open_lo') else '['}{lo_s}, {hi_s}]"


# ---------------------------------------------------------------------------------------------
# Distributions across patients


@dataclass(frozen=True)
class Dist:
    """A parameter's distribution across patients.

    Kinds: ``constant`` (value), ``normal`` (mean, sd), ``lognormal`` (median, sigma: the sd of
    the log), ``uniform`` (low, high). ``min``/``max`` clip any kind. Draws use one standard
    normal (or uniform) per patient from a stream named after the parameter's key path, so that
    changing a distribution's parameters moves every patient's value smoothly (common random
    numbers across sweeps and arms).
    """

    kind: str
    params: tuple[tuple[str, float], ...]
    lo: float = -math.inf
    hi: float = math.inf

    KINDS: typing.ClassVar[dict[str, tuple[str, ...]]] = {
        "constant": ("value",),
        "normal": ("mean", "sd"),
        "lognormal": ("median", "sigma"),
        "uniform": ("low", "high"),
    }

    @classmethod
    def constant(cls, value: float) -> Dist:
        return cls("constant", (("value", float(value)),))

    @property
    def p(self) -> dict[str, float]:
        return dict(self.params)

    def support(self) -> tuple[float, float]:
        """Smallest and largest values the distribution can give."""
        p = self.p
        lo, hi = {
            "constant": (p.get("value", 0.0), p.get("value", 0.0)),
            "normal": (-math.inf, math.inf) if p.get("sd", 0) > 0 else (p.get("mean", 0),) * 2,
            "lognormal": (0.0, math.inf),
            "uniform": (p.get("low", 0.0), p.get("high", 0.0)),
        }[self.kind]
        # Clipping maps both ends into [min, max] (a constant 5 with min = 10 is always 10).
        return min(max(lo, self.lo), self.hi), min(max(hi, self.lo), self.hi)

    @property
    def center(self) -> float:
        """A typical value (mean, median or midpoint), clipped."""
        p = self.p
        c = {
            "constant": p.get("value"),
            "normal": p.get("mean"),
            "lognormal": p.get("median"),
            "uniform": (p.get("low", 0) + p.get("high", 0)) / 2,
        }[self.kind]
        return float(np.clip(c, self.lo, self.hi))

    def from_normal(self, z: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Values for standard normals ``z`` (and uniforms ``u`` for the uniform kind)."""
        p = self.p
        if self.kind == "constant":
            x = np.full(z.shape, p["value"])
        elif self.kind == "normal":
            x = p["mean"] + p["sd"] * z
        elif self.kind == "lognormal":
            x = p["median"] * np.exp(p["sigma"] * z)
        else:
            x = p["low"] + (p["high"] - p["low"]) * u
        return np.clip(x, self.lo, self.hi)

    def sample(self, seed: int, path: str, patient_ids: np.ndarray, n: int = 1) -> np.ndarray:
        """(patients, n) draws, keyed by (seed, key path, patient id)."""
        z = rnd.normal(seed, f"param:{path}", patient_ids, n)
        u = rnd.uniform(seed, f"param-u:{path}", patient_ids, n)
        return self.from_normal(z, u)


# ---------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True)
class Arm:
    """One arm of the cohort. Every patient is simulated in every arm (common random numbers)."""

    treatment: str = field(default="none", metadata={"doc": "a [treatments] name, or none"})


@dataclass(frozen=True)
class Cohort:
    """Who is simulated.

    Attributes:
        patients: cohort size (patients per arm).
        seed: scenario seed; a patient's randomness depends only on (seed, patient id).
        arms: arm name -> :class:`Arm`.
        age_years: age at the start of degeneration (years).
        onset_region: share of patients whose disease starts in each region (sums to 1).
    """

    patients: int = field(metadata=_range(1, 10**9))
    seed: int = field(metadata=_range(0, 2**63 - 1))
    age_years: Dist = field(metadata=_range(0, 120))
    onset_region: dict[str, float] = field(metadata={"keys": body_map.REGIONS, "lo": 0, "hi": 1})
    arms: dict[str, Arm] = field(default_factory=lambda: {"natural_history": Arm()})


@dataclass(frozen=True)
class Phenotype:
    """A latent phenotype: which disease processes a patient has.

    Attributes:
        share: fraction of the cohort (the shares sum to 1).
        processes: among ``lmn`` and ``umn`` (PMA: lmn; PLS: umn; ALS: both).
        speed_factor: multiplies the speed of every process of this phenotype.
    """

    share: float = field(metadata=_range(0, 1))
    processes: tuple[str, ...] = field(metadata={"choices": ("lmn", "umn"), "nonempty": True})
    speed_factor: float = field(default=1.0, metadata=_range(0, None, open_lo=True))


@dataclass(frozen=True)
class Time:
    """Simulated span. Month 0 is the start of degeneration."""

    duration_months: float = field(metadata=_range(0, 1200, open_lo=True))
    step_months: float = field(default=1.0, metadata=_range(0, 3, open_lo=True))


@dataclass(frozen=True)
class Visits:
    """Visit schedule.

    Attributes:
        start: ``symptoms`` (first visit a referral delay after symptom onset) or
            ``degeneration`` (visits from month 0, as in studies of presymptomatic carriers).
        referral_delay_months: symptom onset to first visit (months).
        interval_months: months between visits (whole months).
    """

    interval_months: int = field(metadata=_range(1, 120))
    start: str = field(default="symptoms", metadata={"choices": ("symptoms", "degeneration")})
    referral_delay_months: Dist = field(
        default_factory=lambda: Dist.constant(0.0), metadata=_range(0, 600)
    )


@dataclass(frozen=True)
class MuscleOverride:
    """Per-muscle changes to the default body map (both sides)."""

    units: int | None = field(default=None, metadata=_range(2, 5000))
    innervation_ratio: float | None = field(default=None, metadata=_range(1, 10000))
    size_range: float | None = field(default=None, metadata=_range(1, 1000))
    vulnerability: float | None = field(default=None, metadata=_range(0, 100))
    axon_length_cm: float | None = field(default=None, metadata=_range(1, 200))
    cmap_mv: float | None = field(default=None, metadata=_range(0, 100, open_lo=True))


_MUSCLE_NAMES = tuple(dict.fromkeys(m.name for m in body_map.default_muscles()))


@dataclass(frozen=True)
class BodySpec:
    """Which muscles to simulate (default: all of the body map) and changes to them."""

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
        speed: cumulative hazard per month of a neuron of weight 1 (1/month).
        onset_month: months from the start of degeneration to the process's onset.
        spread_delay_months: onset of one region to the next region (rostro-caudal).
        contralateral_delay_months: one side of a region to the other side.
        noncontiguous_probability: chance per patient of one jump to a non-neighbouring region.
    """

    speed: Dist = field(metadata=_range(0, None))
    onset_month: Dist = field(default_factory=lambda: Dist.constant(0.0), metadata=_range(0, 600))
    spread_delay_months: Dist = field(
        default_factory=lambda: Dist.constant(6.0), metadata=_range(0, 1200)
    )
    contralateral_delay_months: Dist = field(
        default_factory=lambda: Dist.constant(3.0), metadata=_range(0, 1200)
    )
    noncontiguous_probability: float = field(default=0.0, metadata=_range(0, 1))


@dataclass(frozen=True)
class LMN(_Process):
    """Lower motor neuron death: a hazard over neurons (see :mod:`progression.processes.lmn`).

    Attributes (besides those of every process):
        pattern: ``focal`` (ALS: focal onset and contiguous spread), ``segmental`` (anterior
            horn cells of chosen segments, as in spinal muscular atrophy or polio) or
            ``length_dependent`` (distal axons first): :data:`progression.processes.lmn.PATTERNS`.
        size_exponent: nu in ``w = (size / mean size) ** nu``: large units die first.
        segments: (segmental) the segments affected.
        length_exponent: (length_dependent) gamma in ``(L / reference_length_cm) ** gamma``.
        reference_length_cm: (length_dependent) axon length with weight 1 (cm).
    """

    pattern: str = field(default="focal", metadata={"choices": tuple(lmn_patterns.PATTERNS)})
    size_exponent: float = field(default=1.0, metadata=_range(0, 5))
    segments: tuple[str, ...] = field(default=(), metadata={"pattern_only": "segmental"})
    length_exponent: float = field(
        default=3.0, metadata=_range(0, 20, pattern_only="length_dependent")
    )
    reference_length_cm: float = field(
        default=100.0, metadata=_range(1, 300, open_lo=True, pattern_only="length_dependent")
    )


@dataclass(frozen=True)
class UMN(_Process):
    """Upper motor neuron (corticospinal and corticobulbar tract) loss, fastest axons first.

    Attributes (besides those of every process):
        pattern: ``focal`` (onset in one compartment, spread to its neighbours).
        velocity_exponent: fastest axons most vulnerable: ``w = (v / mean v) ** exponent``.
        axons: axons sampled per tract (a sample, not the anatomy).
        drive_weakness: a_u, weakness from lost drive: force x ``1 - a_u * (1 - integrity)``.
    """

    pattern: str = field(default="focal", metadata={"choices": ("focal",)})
    velocity_exponent: float = field(default=2.0, metadata=_range(0, 10))
    axons: int = field(default=100, metadata=_range(10, 10000))
    drive_weakness: float = field(default=0.5, metadata=_range(0, 1))


@dataclass(frozen=True)
class Disease:
    """The disease processes; a phenotype uses a subset of them."""

    lmn: LMN | None = None
    umn: UMN | None = None


@dataclass(frozen=True)
class Reinnervation:
    """Collateral reinnervation and denervation atrophy.

    Attributes:
        capacity: c_max, largest size of a unit over its healthy size.
        time_constant_months: tau_r, orphans are adopted at rate 1/tau_r (months).
        sick_exponent: q, sprouting x ``(1 - sickness) ** q``.
        atrophy_window_months: W, orphans not adopted within W months atrophy (months).
    """

    capacity: Dist = field(metadata=_range(1, 50))
    time_constant_months: Dist = field(metadata=_range(0, None, open_lo=True))
    sick_exponent: float = field(default=2.0, metadata=_range(0, 20))
    atrophy_window_months: float = field(default=12.0, metadata=_range(1, 240))


@dataclass(frozen=True)
class Excitability:
    """Neuronal excitability and fasciculations (MODEL.md section 6).

    A living unit's margin (mV) between resting potential and threshold is
    ``margin_mv * (1 - sickness) ** sickness_exponent``; its spontaneous discharge rate is
    ``max_rate_per_min * exp(-margin**2 / (2 * noise_mv**2))``, times
    ``(fibres / healthy fibres) ** enlargement_exponent``: ectopic discharges arise mostly in
    the distal axon and its terminal branches, which collateral sprouting multiplies, and an
    enlarged unit's discharge is the more readily seen (0: size does not matter).
    """

    margin_mv: float = field(default=10.0, metadata=_range(0, 50, open_lo=True))
    sickness_exponent: float = field(default=1.0, metadata=_range(0, 10))
    noise_mv: float = field(default=2.5, metadata=_range(0, 50, open_lo=True))
    max_rate_per_min: float = field(default=1.0, metadata=_range(0, 100))
    enlargement_exponent: float = field(default=0.0, metadata=_range(0, 5))


@dataclass(frozen=True)
class Symptoms:
    """Emergent symptom onset: a region's function (strength fraction) falls below a threshold."""

    function_threshold: Dist = field(
        default_factory=lambda: Dist("normal", (("mean", 0.75), ("sd", 0.05)), 0.3, 0.95),
        metadata=_range(0, 1),
    )


@dataclass(frozen=True)
class Respiration:
    """Respiratory failure when respiratory strength (fraction of healthy) falls below a threshold.

    Attributes:
        failure_threshold: respiratory strength at which breathing fails.
        upper_airway_weight: share of respiratory strength carried by the bulbar muscles (the
            tongue, genioglossus: the upper-airway dilator active in every inspiration, which
            also guards the airway); the rest is the pump (hemidiaphragms and intercostals).
    """

    failure_threshold: Dist = field(
        default_factory=lambda: Dist("normal", (("mean", 0.3), ("sd", 0.05)), 0.05, 0.6),
        metadata=_range(0, 1),
    )
    upper_airway_weight: float = field(default=0.0, metadata=_range(0, 1))


@dataclass(frozen=True)
class Mortality:
    """Background mortality by age, Gompertz ``mu(x) = a * exp(b * (x - 60))`` (1/year)."""

    gompertz_a_per_year: float = field(default=0.008, metadata=_range(0, 1))
    gompertz_b_per_year: float = field(default=0.09, metadata=_range(0, 1))


@dataclass(frozen=True)
class ScanRecording:
    """Which full CMAP scans to record into the ``scans`` table (default: none).

    Attributes:
        muscles: muscle names whose scans are recorded (every simulated side).
        every_nth_visit: record at a patient's 1st visit and every n-th visit after it.
    """

    muscles: tuple[str, ...] = field(default=(), metadata={"choices": _MUSCLE_NAMES})
    every_nth_visit: int = field(default=1, metadata=_range(1, 1000))


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
            stimulus-response recording, :mod:`progression.exam.scans`) or ``mean_smup`` (the
            interim method: CMAP over the mean SMUP of randomly sampled units).
        mune_muscles: muscles whose MUNE is measured (default: every muscle; elsewhere
            ``mune`` is null). Incremental MUNE is the costliest examination (about 8
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
        cmct_sd_ms: CMCT measurement SD (ms).
        mep_integrity: tract integrity below which no MEP is evoked.
        reflex_sd: rater noise on reflex grade (grades).
        reflex_subject_sd: a person's own tendon-reflex level (grades; chosen, no published
            figure).
        jaw_sd: rater noise on the jaw-jerk score (grades; chosen, no published figure).
        jaw_subject_sd: a person's own jaw-jerk level (grades; chosen, no published figure;
            the healthy jaw jerk is slight or barely present, :data:`signs.JAW_HEALTHY`).
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

    cmap_cov: float = field(default=0.05, metadata=_range(0, 1))
    cmap_subject_cov: float = field(default=0.2, metadata=_range(0, 2))
    munix_cov: float = field(default=0.14, metadata=_range(0, 1))
    munix_population_cov: float = field(
        default=0.23,
        metadata=_range(0, 1, doc="between-person CoV of healthy MUNIX, test-retest included"),
    )
    mune_method: str = field(
        default="incremental", metadata={"choices": ("incremental", "mean_smup")}
    )
    mune_muscles: tuple[str, ...] = field(
        default=_MUSCLE_NAMES, metadata={"choices": _MUSCLE_NAMES}
    )
    mune_increments: int = field(default=10, metadata=_range(1, 50))
    stimulus_step: float = field(default=0.002, metadata=_range(0.0001, 0.1))
    increment_detection_sd: float = field(default=2.5, metadata=_range(0.5, 20))
    threshold_spread: float = field(default=0.12, metadata=_range(0, 1))
    threshold_fluctuation: float = field(default=0.015, metadata=_range(0.001, 0.1))
    recording_noise_uv: float = field(default=10.0, metadata=_range(0.1, 1000))
    scan_stimuli: int = field(default=500, metadata=_range(10, 4000))
    scans: ScanRecording = field(default_factory=ScanRecording)
    mune_sample_units: int = field(default=10, metadata=_range(1, 100))
    smup_cov: float = field(default=0.1, metadata=_range(0, 1))
    fasciculation_minutes: float = field(
        default=2.0,
        metadata=_range(
            0, 60, open_lo=True, doc="minutes of rest over which fasciculations are counted"
        ),
    )
    fibrillation_sd: float = field(
        default=0.3, metadata=_range(0, 2, doc="log-SD of the orphan fraction the needle reads")
    )
    mup_sd: float = field(
        default=0.1, metadata=_range(0, 2, doc="log-SD of the needle MUP amplitude")
    )
    cmct_sd_ms: float = field(default=0.8, metadata=_range(0, 10))
    mep_integrity: float = field(default=0.15, metadata=_range(0, 1))
    reflex_sd: float = field(default=0.15, metadata=_range(0, 2))
    reflex_subject_sd: float = field(
        default=0.15, metadata=_range(0, 2, doc="a person's own reflex level (grades)")
    )
    jaw_sd: float = field(
        default=0.1, metadata=_range(0, 2, doc="rater noise on the jaw-jerk score (grades)")
    )
    jaw_subject_sd: float = field(
        default=0.15, metadata=_range(0, 2, doc="a person's own jaw-jerk level (grades)")
    )
    svc_cov: float = field(default=0.05, metadata=_range(0, 1))
    svc_subject_sd: float = field(
        default=10.0,
        metadata=_range(0, 50, doc="a person's healthy SVC around 100% predicted (points)"),
    )
    mrc_sd: float = field(default=0.1, metadata=_range(0, 2))
    alsfrs_subject_sd: float = field(
        default=0.04,
        metadata=_range(0, 0.5, doc="a person's ALSFRS-R item threshold shift (strength)"),
    )
    alsfrs_visit_sd: float = field(
        default=0.02,
        metadata=_range(0, 0.5, doc="visit noise on ALSFRS-R item thresholds (strength)"),
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

    lmn_speed: float = field(default=1.0, metadata=_range(0, 100))
    umn_speed: float = field(default=1.0, metadata=_range(0, 100))
    reinnervation_rate: float = field(default=1.0, metadata=_range(0, 100))
    start: str | float = field(
        default="first_visit", metadata={"choices": ("first_visit", "enrolment")}
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
    max_months_since_onset: float = field(default=24.0, metadata=_range(0, 1200))
    min_alsfrs_r: int = field(default=0, metadata=_range(0, 48))
    max_alsfrs_r: int = field(default=48, metadata=_range(0, 48))
    min_svc_percent: float = field(default=0.0, metadata=_range(0, 200))
    min_age_years: float = field(default=18.0, metadata=_range(0, 120))
    max_age_years: float = field(default=120.0, metadata=_range(0, 120))


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

    duration_months: float = field(metadata=_range(1, 600))
    visit_interval_months: int = field(default=1, metadata=_range(1, 60))
    dropout_per_month: float = field(default=0.0, metadata=_range(0, 1))
    eligibility: Eligibility = field(default_factory=Eligibility)


#: Sweep designs (see :mod:`progression.studies.sweep`).
SWEEP_METHODS = ("grid", "sobol", "latin", "morris")


@dataclass(frozen=True)
class SweepParameter:
    """One swept parameter: ``values`` (a grid) or ``low`` and ``high`` (a range to sample)."""

    values: tuple[float, ...] = ()
    low: float | None = None
    high: float | None = None


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
    samples: int = field(default=8, metadata=_range(1, 10**6))
    levels: int = field(default=4, metadata=_range(2, 1000))
    replicates: int = field(default=1, metadata=_range(1, 10**4))
    seed: int = field(default=0, metadata=_range(0, 2**32 - 1))


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: everything a run needs, nothing it computes.

    Attributes:
        name: short title.
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
    raw = _parse_toml(text, source)
    if not raw:  # 0 bytes, or only whitespace and comments
        raise ScenarioError(f"{source}: the scenario file is empty")
    for key, value in (overrides or {}).items():
        _set_path(raw, key, value, source)
    scenario = _build(Scenario, raw, "", source)
    _check(scenario, source)
    return replace(
        scenario,
        path=source,
        source_text=text,
        overrides=tuple((k, _plain(v)) for k, v in (overrides or {}).items()),
        hash=content_hash(scenario),
    )


def content_hash(scenario: Scenario) -> str:
    """sha256 hex of the validated content (every value, defaults included, in an
    order-preserving canonical form; not the path, the text or the comments)."""
    canonical = json.dumps(_canonical(scenario), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


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
        _set_path(doc, key, value, source)
    listed = "\n".join(
        f"#   {k} = {'(removed)' if v is None else _show(v, 200)}" for k, v in overrides
    )
    out = f"{OVERRIDES_HEADER}\n{listed}\n\n{tomlkit.dumps(doc)}"
    if expected_hash is not None and parse_scenario(out, source).hash != expected_hash:
        raise ScenarioError(f"{source}: cannot write the overrides into the scenario text")
    return out


#: Where tomllib (Python 3.11-3.13) puts the position: "... (at line 3, column 5)".
_TOML_WHERE = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


def _parse_toml(text: str, source: str) -> dict:
    """``tomllib.loads`` with every failure turned into a one-line error naming the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = getattr(e, "msg", None) or str(e)
        line, col = getattr(e, "lineno", None), getattr(e, "colno", None)
        m = _TOML_WHERE.search(msg)
        if m:
            msg = msg[: m.start()]
            if m.group(1):
                line, col = int(m.group(1)), int(m.group(2))
        if line is None:  # at the end of the document
            line, col = max(1, len(text.rstrip("\n").split("\n"))), None
        where = f"column {col}" if col else "end of file"
        raise ScenarioError(f"{source}: line {line}: malformed TOML: {msg} ({where})") from None
    except ValueError as e:  # an integer literal longer than Python converts
        m = re.search(r"\d[\d_]{1000,}", text)
        line = text.count("\n", 0, m.start()) + 1 if m else 1
        raise ScenarioError(
            f"{source}: line {line}: malformed TOML: a number too long to read ({e})"
        ) from None
    except RecursionError:
        lines = text.split("\n")
        deepest = max(range(len(lines)), key=lambda i: lines[i].count("[") + lines[i].count("{"))
        raise ScenarioError(
            f"{source}: line {deepest + 1}: malformed TOML: arrays or tables nested too deeply"
        ) from None


def _plain(value: Any) -> Any:
    """An override value as TOML would give it: numpy scalars to Python, tuples to lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _set_path(raw: dict, key: str, value: Any, source: str) -> None:
    """Apply one override ``key = value`` (``None`` removes the key)."""
    if not isinstance(key, str) or not all(key.split(".")):
        raise _err(source, str(key) or "<empty>", "an override key path like disease.lmn.speed")
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            if value is None:
                return  # nothing to remove
            node[part] = {}
            nxt = node[part]  # read back: a TOML document stores its own table type
        elif not isinstance(nxt, dict):
            # A number given where a distribution table is overridden: make it a table.
            number = isinstance(nxt, int | float) and not isinstance(nxt, bool)
            if number and i == len(parts) - 2:
                node[part] = {"dist": "constant", "value": _plain(nxt)}
                nxt = node[part]
            else:
                where = ".".join(parts[: i + 1])
                raise _err(source, key, f"a key path through tables ({where} is not one)", nxt)
        node = nxt
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = copy.deepcopy(_plain(value))


def _show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"<an integer of {value.bit_length()} bits>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _err(source: str, path: str, expected: str, got: Any = MISSING) -> ScenarioError:
    tail = "" if got is MISSING else f", got {_show(got)}"
    return ScenarioError(f"{source}: {path or '<top level>'}: expected {expected}{tail}")


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _join(path: str, key: str) -> str:
    """``path.key``, with ``key`` quoted as in TOML unless it is a bare key."""
    key = str(key)
    if not _BARE_KEY.fullmatch(key):
        key = json.dumps(key, ensure_ascii=False)
    return f"{path}.{key}" if path else key


def _check_unknown(table: dict, allowed: typing.Iterable[str], path: str, source: str) -> None:
    allowed = list(allowed)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ScenarioError(
                f"{source}: {_join(path, key)}: unknown key{hint}; "
                f"expected one of {', '.join(allowed)}"
            )


def _build(cls, table: Any, path: str, source: str):
    """Build dataclass ``cls`` from a TOML table, checking every key."""
    if not isinstance(table, dict):
        raise _err(source, path, f"a table of {cls.__name__} settings", table)
    hints = typing.get_type_hints(cls)
    public = [f for f in fields(cls) if not f.metadata.get("internal")]
    _check_unknown(table, [f.name for f in public], path, source)
    pattern = table.get("pattern", "focal")
    values = {}
    for f in public:
        key = _join(path, f.name)
        only = f.metadata.get("pattern_only")
        if f.name in table and only and pattern != only:
            raise _err(source, key, f"this key only with pattern = {only!r}", table[f.name])
        if f.name not in table:
            if f.default is MISSING and f.default_factory is MISSING:
                raise _err(source, key, f"a value ({_describe(hints[f.name], f)}); it is required")
            continue
        values[f.name] = _convert(hints[f.name], table[f.name], key, f, source)
    return cls(**values)


def _describe(tp, f) -> str:
    origin = typing.get_origin(tp)
    if tp is Dist:
        return "a number or a distribution table"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, f) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        choices = f.metadata.get("choices")
        return f"a list of {', '.join(choices)}" if choices else "a list of strings"
    if origin is dict:
        return "a table"
    if is_dataclass(tp):
        return "a table"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def _check_range(x: float, key: str, f, source: str, got: Any = MISSING) -> None:
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    open_lo = f.metadata.get("open_lo", False)
    got = x if got is MISSING else got
    if (lo is not None and (x < lo or (open_lo and x == lo))) or (hi is not None and x > hi):
        raise _err(source, key, f"a value in {_interval(f.metadata)}", got)


def _number(value: Any, key: str, source: str, integer: bool = False) -> float:
    """``value`` if it is a finite number (an integer if ``integer``), else an error."""
    what = "an integer" if integer else "a finite number"
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise _err(source, key, what, value)
    if integer:
        return value  # any size: the field's range check reports one too large
    try:
        finite = math.isfinite(float(value))
    except OverflowError:  # an integer beyond the range of a float
        finite = False
    if not finite:
        raise _err(source, key, what, value)
    return value


def _convert(tp, value: Any, key: str, f, source: str):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if args == [str, float]:  # a choice or a month (Treatment.start)
            if isinstance(value, str):
                return _convert(str, value, key, f, source)
            choices = " or ".join(map(repr, f.metadata.get("choices", ())))
            what = f"{choices} or a month >= 0"
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _err(source, key, what, value)
            x = _number(value, key, source)
            if x < 0:
                raise _err(source, key, what, value)
            return float(x)
        return _convert(args[0], value, key, f, source)
    if tp is Dist:
        return _dist(value, key, f, source)
    if is_dataclass(tp):
        return _build(tp, value, key, source)
    if origin is dict:
        if not isinstance(value, dict):
            raise _err(source, key, "a table", value)
        if "keys" in f.metadata:
            _check_unknown(value, f.metadata["keys"], key, source)
        vtype = typing.get_args(tp)[1]
        out = {}
        for k, v in value.items():
            sub = _join(key, k)
            if is_dataclass(vtype):
                out[k] = _build(vtype, v, sub, source)
            else:
                x = float(_number(v, sub, source))
                _check_range(x, sub, f, source)
                out[k] = x
        return out
    if origin is tuple and typing.get_args(tp)[0] is float:  # a list of numbers
        if not isinstance(value, list):
            raise _err(source, key, "a list of numbers", value)
        return tuple(float(_number(v, key, source)) for v in value)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _err(source, key, "a list of strings", value)
        choices = f.metadata.get("choices")
        for v in value:
            if choices and v not in choices:
                raise _err(source, key, f"items among {', '.join(choices)}", v)
        if f.metadata.get("nonempty") and not value:
            raise _err(source, key, "a non-empty list", value)
        if len(set(value)) != len(value):
            raise _err(source, key, "a list without repeats", value)
        return tuple(value)
    if tp is str:
        choices = f.metadata.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            what = f"one of {', '.join(map(repr, choices))}" if choices else "a string"
            raise _err(source, key, what, value)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _err(source, key, "true or false", value)
        return value
    if tp in (int, float):
        x = _number(value, key, source, integer=tp is int)
        _check_range(x, key, f, source)
        return tp(x)
    raise TypeError(f"unsupported field type {tp} at {key}")  # a programming error


def _dist(value: Any, key: str, f, source: str) -> Dist:
    if isinstance(value, int | float) and not isinstance(value, bool):
        x = float(_number(value, key, source))
        _check_range(x, key, f, source)
        return Dist.constant(x)
    if not isinstance(value, dict):
        raise _err(source, key, 'a number or a table like { dist = "lognormal", ... }', value)
    kinds = ", ".join(map(repr, Dist.KINDS))
    if "dist" not in value:
        every = dict.fromkeys(n for names in Dist.KINDS.values() for n in names)
        _check_unknown(value, ("dist", *every, "min", "max"), key, source)
        raise _err(source, _join(key, "dist"), f"one of {kinds}; it is required in a table")
    kind = value["dist"]
    if not isinstance(kind, str) or kind not in Dist.KINDS:
        raise _err(source, _join(key, "dist"), f"one of {kinds}", kind)
    names = Dist.KINDS[kind]
    _check_unknown(value, ("dist", *names, "min", "max"), key, source)
    params = []
    for name in names:
        if name not in value:
            raise _err(source, _join(key, name), f"a number (required for dist = {kind!r})")
        params.append((name, float(_number(value[name], _join(key, name), source))))
    p = dict(params)
    if kind == "normal" and p["sd"] < 0:
        raise _err(source, _join(key, "sd"), "a value >= 0", p["sd"])
    if kind == "lognormal" and (p["median"] <= 0 or p["sigma"] < 0):
        bad = "median" if p["median"] <= 0 else "sigma"
        raise _err(source, _join(key, bad), "median > 0 and sigma >= 0", p[bad])
    if kind == "uniform" and p["high"] < p["low"]:
        raise _err(source, _join(key, "high"), f"a value >= low ({p['low']:g})", p["high"])
    lo, hi = -math.inf, math.inf
    if "min" in value:
        lo = float(_number(value["min"], _join(key, "min"), source))
    if "max" in value:
        hi = float(_number(value["max"], _join(key, "max"), source))
    if hi < lo:
        raise _err(source, _join(key, "max"), f"a value >= min ({lo:g})", hi)
    dist = Dist(kind, tuple(params), lo, hi)
    s_lo, s_hi = dist.support()
    meta = f.metadata
    r_lo, r_hi = meta.get("lo"), meta.get("hi")
    # A lognormal never reaches its lower end (0) unless clipped there from above 0.
    attained = not (kind == "lognormal" and lo <= 0 < hi)
    at_open_end = meta.get("open_lo") and s_lo == r_lo and attained
    below = r_lo is not None and (s_lo < r_lo or at_open_end)
    if below or (r_hi is not None and s_hi > r_hi):
        raise _err(
            source,
            key,
            f"a distribution within {_interval(meta)} (add min/max to bound it); "
            f"this one spans [{s_lo:g}, {s_hi:g}]",
        )
    return dist


#: Arm names become folder names (``arm=<name>``): letters, digits, ``_`` and ``-`` only.
_ARM_NAME = re.compile(r"[A-Za-z0-9_-]+")
#: The folder name that hive partitioning (polars, pyarrow) reads back as a null value.
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def _check(s: Scenario, source: str) -> None:
    """Checks that span several keys."""
    total = sum(s.cohort.onset_region.values())
    if abs(total - 1) > 1e-6:
        raise _err(source, "cohort.onset_region", "shares summing to 1", round(total, 6))
    if not s.cohort.arms:
        raise _err(source, "cohort.arms", "at least one arm, e.g. [cohort.arms.natural_history]")
    for arm in s.cohort.arms:
        if not _ARM_NAME.fullmatch(arm):
            raise _err(
                source,
                _join("cohort.arms", arm),
                "an arm name of letters, digits, _ and - (it names an output folder)",
            )
        if arm == _HIVE_NULL:
            raise _err(
                source,
                _join("cohort.arms", arm),
                f"an arm name other than {_HIVE_NULL} (its folder reads back as a missing arm)",
            )
    if not s.phenotypes:
        raise _err(source, "phenotypes", "at least one [phenotypes.<NAME>] table")
    total = sum(p.share for p in s.phenotypes.values())
    if abs(total - 1) > 1e-6:
        raise _err(source, "phenotypes", "shares summing to 1", round(total, 6))
    for name, p in s.phenotypes.items():
        for proc in p.processes:
            if getattr(s.disease, proc) is None:
                raise _err(
                    source,
                    _join(_join("phenotypes", name), "processes"),
                    f"a process defined in [disease.{proc}]",
                    proc,
                )
    for arm, a in s.cohort.arms.items():
        if a.treatment != "none" and a.treatment not in s.treatments:
            valid = ", ".join(["none", *s.treatments])
            key = _join(_join("cohort.arms", arm), "treatment")
            raise _err(source, key, f"one of {valid}", a.treatment)
    for name, t in s.treatments.items():
        if t.start == "enrolment" and s.trial is None:
            key = _join(_join("treatments", name), "start")
            raise _err(source, key, "'enrolment' only with a [trial] section", t.start)
    if s.trial is not None:
        e = s.trial.eligibility
        if e.max_alsfrs_r < e.min_alsfrs_r:
            key = "trial.eligibility.max_alsfrs_r"
            raise _err(source, key, f">= min_alsfrs_r ({e.min_alsfrs_r})", e.max_alsfrs_r)
        if e.max_age_years < e.min_age_years:
            raise _err(source, "trial.eligibility.max_age_years",
                       f">= min_age_years ({e.min_age_years:g})", e.max_age_years)
    lmn = s.disease.lmn
    if lmn is not None and lmn.pattern == "segmental":
        known = {seg for m in s.muscles() for seg in m.segments}
        if not lmn.segments:
            raise _err(source, "disease.lmn.segments", "a non-empty list for pattern 'segmental'")
        for seg in lmn.segments:
            if seg not in known:
                raise _err(source, "disease.lmn.segments", f"segments among {sorted(known)}", seg)
    step = s.time.step_months
    whole = abs(step - round(step)) < 1e-6 if step >= 1 else abs(1 / step - round(1 / step)) < 1e-6
    if not whole:
        raise _err(
            source,
            "time.step_months",
            "a step that divides a month (1, 0.5, 0.25, ...) or a whole number of months, "
            "so that visits fall on whole months",
            step,
        )
    if step > s.visits.interval_months:
        raise _err(source, "time.step_months", "a step no longer than visits.interval_months", step)
    if step > s.time.duration_months:
        raise _err(source, "time.step_months", "a step no longer than time.duration_months", step)
    for name in s.exam.scans.muscles:
        if name not in s.body.muscles:
            raise _err(source, "exam.scans.muscles", "muscles among body.muscles", name)


def _canonical(obj: Any) -> Any:
    """A JSON-ready form of a validated section, for the hash (order preserved)."""
    if isinstance(obj, Dist):
        out: dict[str, Any] = {"dist": obj.kind, **obj.p}
        if obj.lo > -math.inf:
            out["min"] = obj.lo
        if obj.hi < math.inf:
            out["max"] = obj.hi
        return out
    if is_dataclass(obj):
        return {
            f.name: _canonical(getattr(obj, f.name))
            for f in fields(obj)
            if not f.metadata.get("internal")
            # a section hashed only when present, so adding it left older hashes unchanged
            and not (f.metadata.get("hash_if_set") and getattr(obj, f.name) is None)
        }
    if isinstance(obj, dict):
        return [[k, _canonical(v)] for k, v in obj.items()]
    if isinstance(obj, tuple | list):
        return [_canonical(v) for v in obj]
    return obj


def dist_fields(obj: Any, path: str = "") -> typing.Iterator[tuple[str, Dist]]:
    """Every (key path, Dist) in a scenario section, in field order."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        key = _join(path, f.name)
        if isinstance(value, Dist):
            yield key, value
        elif is_dataclass(value):
            yield from dist_fields(value, key)
