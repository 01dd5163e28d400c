"""Diagnosis from what was observed: UMN and LMN dysfunction per region, then the phenotype.

Per region (MODEL.md section 9): LMN dysfunction = weakness with wasting, or fibrillations with
neurogenic (large) MUPs; UMN dysfunction = brisk reflexes, spasticity, Babinski, brisk jaw jerk,
spastic dysarthria, pseudobulbar affect, or a prolonged or absent central motor conduction.
Findings accumulate over visits. ``diagnosis`` is the clinical phenotype (ALS, PMA, PLS after 2
years of UMN-only disease, else none); ``gold_coast`` applies the Gold Coast criteria (2020).
"""

from __future__ import annotations

import numpy as np

#: A needle MUP this many times the healthy mean is neurogenic (reinnervated).
NEUROGENIC_MUP = 1.4
#: CMCT upper limits: healthy mean plus 2.5 SD (hand 1.3 ms, foot 2.5 ms; Jitsakulchaidej 2022).
CMCT_SD_MS = {7.5: 1.3, 14.0: 2.5}
#: PLS needs UMN-only disease for this long since symptom onset (2020 consensus, probable).
PLS_MONTHS = 24.0
CATEGORIES = ("none", "PMA", "PLS", "ALS")


def cmct_upper_limit(healthy_ms: float) -> float:
    return healthy_ms + 2.5 * CMCT_SD_MS.get(healthy_ms, 0.15 * healthy_ms)


def classify(
    lmn_seen: np.ndarray, umn_seen: np.ndarray, months_since_onset: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Phenotype and Gold Coast status from accumulated findings.

    Args:
        lmn_seen, umn_seen: (patients, regions) dysfunction observed so far.
        months_since_onset: (patients,) months since symptom onset (nan if asymptomatic).

    Returns:
        (diagnosis category strings, gold_coast booleans).
    """
    symptomatic = np.isfinite(months_since_onset)
    any_lmn = lmn_seen.any(axis=1) & symptomatic
    any_umn = umn_seen.any(axis=1) & symptomatic
    dx = np.full(len(any_lmn), "none", dtype=object)
    dx[any_lmn] = "PMA"
    dx[any_umn & (np.nan_to_num(months_since_onset, nan=-1) >= PLS_MONTHS)] = "PLS"
    dx[any_lmn & any_umn] = "ALS"
    gold = symptomatic & ((lmn_seen & umn_seen).any(axis=1) | (lmn_seen.sum(axis=1) >= 2))
    return dx, gold
