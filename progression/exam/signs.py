"""Bedside signs from the state: strength, wasting, reflexes, tone and the bulbar UMN/LMN signs.

Pure functions of arrays; ``z`` arguments are standard normal noise drawn by the caller.

Each categorical sign thresholds a latent score on a physiological scale: the deficit that
makes it (tract lost, units or bulk lost) as the examiner perceives it, the true deficit
times ``exp(offset)``. The caller makes ``offset`` (log units) of the examiner's noise at the
visit and, where a person's make-up shifts what the examiner sees, the person's own level.
Perception is on a ratio scale, as strength is for the MRC grade (noise on log strength):
the examiner misjudges how much of a deficit there is, near the threshold most, and never
finds a deficit where there is none. A positive offset reads as more deficit. With zero
offsets the signs are the noise-free thresholds of the true state.
"""

from __future__ import annotations

import numpy as np

#: MRC grade thresholds on strength (fraction of healthy force): grade 5 at or above 50% (MRC 5
#: hides large losses), 4 from 10%, 3 from 5%, 2 from 1%, 1 (trace) above 0.1%
#: (bodymap.md section C, working mapping).
MRC_THRESHOLDS = np.array([0.001, 0.01, 0.05, 0.10, 0.50])

#: Reflex gain of UMN disinhibition (grades per unit of tract loss) and of the LMN arc (grades
#: per unit of units lost): brisk reflexes in a wasted limb when UMN loss outweighs LMN loss.
REFLEX_UMN_GAIN = 3.0
REFLEX_LMN_GAIN = 2.5
#: Wasting is visible when the muscle's bulk (living fibres plus half-shrunken orphans) falls
#: below this fraction of healthy.
WASTING_BULK = 0.75
#: Spastic tone beyond this spinal release (the tract loss the spinal circuits have adapted to,
#: as the units left express it, :func:`tone`); flaccid when fewer than this share of units
#: remain and the tract is near intact. Calibrated (issue 17): 0.35 -> 0.38, to spasticity in
#: 17% of ALS patients at the first visit (Alvarez 2018 Neurologia 33:8; target
#: ``als_spasticity_first_visit``); PLS leg spasticity at about 3 years (79% of 34, Santos Silva
#: 2024 Muscle Nerve 70:152; ``pls_leg_spasticity``) is the check. Read from the present tract
#: loss, no threshold held both (0.48-0.50 at best); with the months spasticity takes to develop
#: (:data:`progression.processes.umn.SPASTICITY_MONTHS`) 0.37-0.45 holds both. Calibrated
#: again with the UMN weakness reserve (``disease.umn.drive_exponent`` 2: symptoms, and so the
#: first visit, come later in the tract loss): 0.38 -> 0.50 (at 0.38: ALS 30%, PLS legs 96%;
#: at 0.50: 15% and 87%, 3,000 patients).
SPASTIC_LOSS = 0.50
#: The plantar response turns extensor once the lumbosacral tract has lost more than the
#: patient's own threshold, spread uniformly over this range of tract loss. Calibrated (issue
#: 17): (0.1, 1.0) -> (0.05, 0.6), to the Babinski sign in 49% of ALS patients at the first
#: visit (Alvarez 2018 Neurologia 33:8, 130 patients; target ``als_babinski_first_visit``);
#: the wider range gave 28%. Calibrated again with the UMN weakness reserve
#: (``disease.umn.drive_exponent`` 2, the first visit later in the tract loss): (0.05, 0.6)
#: -> (0.08, 0.8) (Babinski at the first visit 59% -> 48%, 3,000 patients).
BABINSKI_LOSS = (0.08, 0.8)
#: The Hoffmann sign (flicking the middle finger's nail flexes the thumb and index: the finger
#: flexor reflex released from the corticospinal tract) is the arm's pathological reflex, as
#: the Babinski sign is the leg's; both are Gold Coast UMN signs (Shefner 2020 Clin
#: Neurophysiol 131:1975), and the Hoffmann sign is not among the pyramidal signs Alvarez 2018
#: counts (hyperreflexia, spasticity, Babinski). It appears once the cervical tract has lost
#: more than the patient's own threshold, spread over a range of tract loss. No published
#: share of ALS patients with a Hoffmann sign at the first visit was found; what is published
#: is that the same cord lesion releases the Hoffmann sign more often than the Babinski sign:
#: in 120 patients with cervical myelopathy, Hoffmann 81%, Babinski 53% (Chikuda 2010 Eur
#: Spine J 19:1684). So its range is the Babinski sign's scaled by 0.53 / 0.81 = 0.65 (a
#: judgment: the ratio of the two shares taken as the ratio of the losses that release them;
#: issue 17, the Babinski sign's own range before).
HOFFMANN_LOSS = (0.05, 0.52)
FLACCID_UNITS = 0.4
#: Healthy jaw-jerk score (2 = normal, 1 = reduced): the normal jaw jerk is slight or barely
#: present, so healthy people sit between normal and reduced and a brisk one is abnormal.
JAW_HEALTHY = 1.8


def mrc_grade(strength: np.ndarray, z: np.ndarray, sd: float) -> np.ndarray:
    """MRC grade 0-5 from strength fraction, with rater noise on log strength."""
    observed = strength * np.exp(sd * z)
    return np.searchsorted(MRC_THRESHOLDS, observed, side="right").astype(np.int8)


def bulk(fibres_fraction: np.ndarray, orphan_fraction: np.ndarray) -> np.ndarray:
    """Muscle bulk over healthy: living fibres plus half-shrunken orphans."""
    return fibres_fraction + 0.5 * orphan_fraction


def wasting(
    fibres_fraction: np.ndarray, orphan_fraction: np.ndarray, offset: np.ndarray | float = 0.0
) -> np.ndarray:
    """Visible wasting: the bulk lost as the examiner sees it (true loss times
    ``exp(offset)``) beyond ``1 -`` :data:`WASTING_BULK`."""
    lost = 1 - bulk(fibres_fraction, orphan_fraction)
    return lost * np.exp(offset) > 1 - WASTING_BULK


def reflex_grade(
    integrity: np.ndarray, units_fraction: np.ndarray, offset: np.ndarray, z: np.ndarray, sd: float
) -> np.ndarray:
    """Tendon reflex 0 (absent) to 4 (clonus), 2 normal (MODEL.md section 6)."""
    score = 2.0 + REFLEX_UMN_GAIN * (1 - integrity) - REFLEX_LMN_GAIN * (1 - units_fraction)
    return np.clip(np.rint(score + offset + sd * z), 0, 4).astype(np.int8)


def tone(
    release: np.ndarray, units_fraction: np.ndarray, offset: np.ndarray | float = 0.0
) -> np.ndarray:
    """``spastic`` (UMN), ``flaccid`` (LMN with the tract intact) or ``normal``.

    ``release`` is the tract loss as the spinal circuits have adapted to it (0 to 1,
    :func:`progression.processes.umn.release`): spasticity develops over months after a tract
    loss, where brisk reflexes follow it within weeks. Spasticity is the stretch reflex released
    from descending inhibition, and the surviving motor units are what contract in it: the
    release is felt in proportion to the units left, so LMN loss masks spasticity (spasticity
    in 17% of ALS patients at the first visit, Alvarez 2018 Neurologia 33:8, against 79% of PLS
    patients' legs, Santos Silva 2024 Muscle Nerve 70:152). Before issue 17 the tract loss
    alone was read (ALS spasticity 77%).

    ``offset`` (log) is the resistance the examiner feels beyond the truth: the release reads
    ``exp(offset)`` times larger and the units lost ``exp(offset)`` times smaller, so one
    feel of the limb moves both readings the same way (more resistance: nearer spastic,
    further from flaccid)."""
    factor = np.exp(offset)
    felt = release * units_fraction * factor
    left = 1 - (1 - units_fraction) / factor
    out = np.full(np.broadcast(release, offset).shape, "normal", dtype=object)
    out[(left < FLACCID_UNITS) & (felt < SPASTIC_LOSS / 2)] = "flaccid"
    out[felt > SPASTIC_LOSS] = "spastic"
    return out


def babinski_threshold(u: np.ndarray) -> np.ndarray:
    """A patient's lumbosacral tract integrity below which the plantar response turns extensor,
    from a uniform draw ``u``: tract loss spread over :data:`BABINSKI_LOSS`."""
    return _release_threshold(u, BABINSKI_LOSS)


def hoffmann_threshold(u: np.ndarray) -> np.ndarray:
    """A patient's cervical tract integrity below which the Hoffmann sign appears, from a
    uniform draw ``u``: tract loss spread over :data:`HOFFMANN_LOSS`."""
    return _release_threshold(u, HOFFMANN_LOSS)


def _release_threshold(u: np.ndarray, loss: tuple[float, float]) -> np.ndarray:
    """Tract integrity ``1 - loss`` with the loss spread uniformly over ``loss`` by ``u``."""
    lo, hi = loss
    return 1 - (lo + (hi - lo) * (1 - u))


def released(tract_integrity: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """A pathological reflex released from the corticospinal tract (the Babinski sign from the
    lumbosacral tract, the Hoffmann sign from the cervical one) once the tract's integrity falls
    below the patient's own threshold (:func:`babinski_threshold`, :func:`hoffmann_threshold`)."""
    return tract_integrity < threshold


def jaw_jerk(
    bulbar_integrity: np.ndarray, bulbar_units: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    """``absent``, ``reduced``, ``normal`` or ``brisk``: UMN loss brisk, LMN loss weak.

    The efferent limb is the trigeminal motor nucleus; the body map has no masseter, so the
    bulbar units' alive fraction (tongue) stands for the bulbar LMN pool, whose hazard is shared.
    ``offset`` is the patient's own level plus the visit's noise (grades).
    """
    score = (
        JAW_HEALTHY
        + REFLEX_UMN_GAIN * (1 - bulbar_integrity)
        - REFLEX_LMN_GAIN * (1 - bulbar_units)
        + offset
    )
    return np.array(["absent", "reduced", "normal", "brisk"], dtype=object)[
        np.searchsorted([0.5, 1.5, 2.5], score, side="right")
    ]


#: Dysarthria: flaccid once the bulbar muscle keeps less than this share of its fibres,
#: spastic once the corticobulbar tract has lost more than this share.
DYSARTHRIA_FIBRES = 0.7
DYSARTHRIA_LOSS = 0.3
#: Pseudobulbar affect once the corticobulbar tract has lost more than this (susceptible only).
PBA_LOSS = 0.4


def dysarthria(
    bulbar_integrity: np.ndarray,
    bulbar_fibres: np.ndarray,
    lmn_offset: np.ndarray | float = 0.0,
    umn_offset: np.ndarray | float = 0.0,
) -> np.ndarray:
    """``none``, ``flaccid`` (LMN), ``spastic`` (UMN) or ``mixed``.

    The listener hears each component with its own error (log): the fibres lost read
    ``exp(lmn_offset)`` times, the tract lost ``exp(umn_offset)`` times the truth."""
    lmn = (1 - bulbar_fibres) * np.exp(lmn_offset) > 1 - DYSARTHRIA_FIBRES
    umn_ = (1 - bulbar_integrity) * np.exp(umn_offset) > DYSARTHRIA_LOSS
    out = np.full(lmn.shape, "none", dtype=object)
    out[lmn] = "flaccid"
    out[umn_] = "spastic"
    out[lmn & umn_] = "mixed"
    return out


def pseudobulbar_affect(
    bulbar_integrity: np.ndarray, susceptible: np.ndarray, offset: np.ndarray | float = 0.0
) -> np.ndarray:
    """Uncontrolled laughing or crying: corticobulbar loss (times ``exp(offset)``, the visit's
    variation of what is reported and judged) past :data:`PBA_LOSS` in a susceptible
    patient."""
    return susceptible & ((1 - bulbar_integrity) * np.exp(offset) > PBA_LOSS)
