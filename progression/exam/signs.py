"""Bedside signs from the state: strength, wasting, reflexes, tone and the bulbar UMN/LMN signs.

Pure functions of arrays; ``z`` arguments are standard normal noise drawn by the caller.
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
#: Spastic tone beyond this tract loss; flaccid when fewer than this share of units remain
#: and the tract is near intact.
SPASTIC_LOSS = 0.35
FLACCID_UNITS = 0.4
#: Healthy jaw-jerk score (2 = normal, 1 = reduced): the normal jaw jerk is slight or barely
#: present, so healthy people sit between normal and reduced and a brisk one is abnormal.
JAW_HEALTHY = 1.8


def mrc_grade(strength: np.ndarray, z: np.ndarray, sd: float) -> np.ndarray:
    """MRC grade 0-5 from strength fraction, with rater noise on log strength."""
    observed = strength * np.exp(sd * z)
    return np.searchsorted(MRC_THRESHOLDS, observed, side="right").astype(np.int8)


def wasting(fibres_fraction: np.ndarray, orphan_fraction: np.ndarray) -> np.ndarray:
    """Visible wasting: bulk below :data:`WASTING_BULK` of healthy."""
    return fibres_fraction + 0.5 * orphan_fraction < WASTING_BULK


def reflex_grade(
    integrity: np.ndarray, units_fraction: np.ndarray, offset: np.ndarray, z: np.ndarray, sd: float
) -> np.ndarray:
    """Tendon reflex 0 (absent) to 4 (clonus), 2 normal (MODEL.md section 6)."""
    score = 2.0 + REFLEX_UMN_GAIN * (1 - integrity) - REFLEX_LMN_GAIN * (1 - units_fraction)
    return np.clip(np.rint(score + offset + sd * z), 0, 4).astype(np.int8)


def tone(integrity: np.ndarray, units_fraction: np.ndarray) -> np.ndarray:
    """``spastic`` (UMN), ``flaccid`` (LMN with the tract intact) or ``normal``."""
    out = np.full(integrity.shape, "normal", dtype=object)
    out[(units_fraction < FLACCID_UNITS) & (integrity > 1 - SPASTIC_LOSS / 2)] = "flaccid"
    out[1 - integrity > SPASTIC_LOSS] = "spastic"
    return out


def babinski(lumbosacral_integrity: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Extensor plantar response once the tract falls below the patient's own threshold."""
    return lumbosacral_integrity < threshold


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


def dysarthria(bulbar_integrity: np.ndarray, bulbar_fibres: np.ndarray) -> np.ndarray:
    """``none``, ``flaccid`` (LMN), ``spastic`` (UMN) or ``mixed``."""
    lmn = bulbar_fibres < 0.7
    umn_ = 1 - bulbar_integrity > 0.3
    out = np.full(lmn.shape, "none", dtype=object)
    out[lmn] = "flaccid"
    out[umn_] = "spastic"
    out[lmn & umn_] = "mixed"
    return out


def pseudobulbar_affect(bulbar_integrity: np.ndarray, susceptible: np.ndarray) -> np.ndarray:
    """Uncontrolled laughing or crying: corticobulbar loss in a susceptible patient."""
    return susceptible & (1 - bulbar_integrity > 0.4)
