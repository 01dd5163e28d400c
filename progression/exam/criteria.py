"""Diagnosis from what was observed: UMN and LMN dysfunction per region, then the phenotype.

Per region (MODEL.md section 9; Gold Coast 2020, Shefner et al. Clin Neurophysiol 131:1975):

- LMN dysfunction: weakness with wasting, or EMG denervation (fibrillations) with neurogenic
  (enlarged, reinnervated) MUPs; in the bulbar region also flaccid dysarthria. An absent jaw
  jerk is *not* an LMN sign: it is often absent in healthy people.
- UMN dysfunction: pathologically brisk reflexes (clonus, brisk reflexes in a weak or wasted
  region, or a reflex preserved at a normal grade by a muscle that is itself weak and wasted:
  "the presence of a reflex in a weak and wasted limb"), spasticity, Babinski or Hoffmann
  sign, brisk jaw jerk, spastic dysarthria or pseudobulbar affect. These are clinical signs: the
  criteria ask for UMN dysfunction found by clinical examination (El Escorial, A:2; Gold Coast:
  reflexes, pathological reflexes, spasticity, slowed and poorly coordinated movement), so TMS,
  which the laboratory records at every visit (``cmct_ms``, ``mep_present``), is not counted.
  Before issue 17's later sessions an absent MEP was UMN dysfunction and a prolonged CMCT a soft
  finding: an LMN-only patient then became ALS once the tract had lost enough fast axons for
  the MEP to fail, whatever the examination showed (PMA conversion 55% within 61 months against
  22% published, Kim 2009, who counted clinical signs).

A graded finding whose healthy range borders the abnormal one (the brisk jaw jerk) is *soft*:
measurement noise alone crosses the limit now and then, and findings accumulate over visits, so
a soft finding counts only when it is present at two consecutive visits (the examiner keeps
that record). Brisk reflexes in a region of normal
strength are not counted at all: healthy people may have brisk reflexes, and without weakness,
clonus or spasticity a neurologist does not call them pathological.

``diagnosis`` is the clinical phenotype (ALS: UMN and LMN; PMA: LMN only, at two consecutive
visits; PLS: UMN only for at least 2 years since symptom onset, probable PLS under the 2020
consensus criteria, Turner et al. JNNP 91:373; else none). An LMN-only picture is a diagnosis
of exclusion that the neurologist confirms at follow-up: the criteria ask for progressive
impairment "documented by history or repeated clinical assessment" (Gold Coast), and a first
visit without UMN signs is common in ALS (26% of 130 patients, their first UMN signs a mean
4.5 months later; Alvarez 2018 Neurologia 33:8). Before issue 17 PMA was diagnosed at the
first LMN-only visit. ``gold_coast`` applies the Gold Coast criteria, which also call LMN
dysfunction in two regions ALS.
"""

from __future__ import annotations

import numpy as np

from progression.body import REGIONS

#: A needle MUP this many times the healthy mean is neurogenic (reinnervated). Healthy MUP
#: amplitude SD is about 14% of the mean (TA 662 +/- 92 microvolts, de Carvalho group), so
#: 1.4x lies near the published upper limit of normal (TA 846 microvolts, 1.28x) plus margin.
NEUROGENIC_MUP = 1.4
#: PLS needs UMN-only disease for this long since symptom onset (2020 consensus, probable).
PLS_MONTHS = 24.0
CATEGORIES = ("none", "PMA", "PLS", "ALS")


def region_findings(
    mus: dict[str, np.ndarray],
    region_of_muscle: np.ndarray,
    mup_healthy_uv: np.ndarray,
    babinski: np.ndarray,
    hoffmann: np.ndarray,
    jaw: np.ndarray,
    dysarthria: np.ndarray,
    pba: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patients, regions) LMN dysfunction, definite UMN dysfunction and soft UMN findings seen
    at one visit.

    Args:
        mus: per-muscle findings (patients, muscles): ``mrc_grade``, ``wasting``,
            ``reflex_grade`` (-1 where not tested), ``tone`` (None where not tested),
            ``fibrillation_grade``, ``mup_amplitude_uv``.
        region_of_muscle: (muscles,) index into :data:`REGIONS`.
        mup_healthy_uv: (muscles,) healthy MUP amplitude.
        babinski, hoffmann, jaw, dysarthria, pba: (patients,) patient-level signs.
    """
    n = babinski.shape[0]
    weak = mus["mrc_grade"] <= 4
    neurogenic = mus["mup_amplitude_uv"] > NEUROGENIC_MUP * mup_healthy_uv
    lmn_m = ((mus["fibrillation_grade"] >= 1) & neurogenic) | (weak & mus["wasting"])
    brisk = mus["reflex_grade"] >= 3
    # A reflex kept at a normal grade by a muscle that is itself weak and wasted: its arc has
    # lost units, so only lost inhibition keeps it (Gold Coast, "the presence of a reflex in
    # a weak and wasted limb").
    preserved = (mus["reflex_grade"] >= 2) & weak & mus["wasting"]
    clonus = mus["reflex_grade"] >= 4
    spastic = mus["tone"] == "spastic"
    lmn_r = np.zeros((n, len(REGIONS)), dtype=bool)
    umn_r = np.zeros((n, len(REGIONS)), dtype=bool)
    soft_r = np.zeros((n, len(REGIONS)), dtype=bool)
    for r in range(len(REGIONS)):
        cols = region_of_muscle == r
        if not cols.any():
            continue
        weak_or_wasted = (weak[:, cols] | mus["wasting"][:, cols]).any(axis=1)
        lmn_r[:, r] = lmn_m[:, cols].any(axis=1)
        umn_r[:, r] = (
            clonus[:, cols].any(axis=1)
            | (brisk[:, cols].any(axis=1) & weak_or_wasted)
            | preserved[:, cols].any(axis=1)
            | spastic[:, cols].any(axis=1)
        )
    b = REGIONS.index("bulbar")
    lmn_r[:, b] |= np.isin(dysarthria, ("flaccid", "mixed"))
    umn_r[:, b] |= np.isin(dysarthria, ("spastic", "mixed")) | pba
    soft_r[:, b] |= jaw == "brisk"
    umn_r[:, REGIONS.index("lumbosacral")] |= babinski
    umn_r[:, REGIONS.index("cervical")] |= hoffmann
    return lmn_r, umn_r, soft_r


def lmn_only(lmn_seen: np.ndarray, umn_seen: np.ndarray) -> np.ndarray:
    """(patients,) LMN dysfunction seen in some region and UMN dysfunction in none."""
    return lmn_seen.any(axis=1) & ~umn_seen.any(axis=1)


def classify(
    lmn_seen: np.ndarray,
    umn_seen: np.ndarray,
    months_since_onset: np.ndarray,
    lmn_only_before: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Phenotype and Gold Coast status from accumulated findings.

    Args:
        lmn_seen, umn_seen: (patients, regions) dysfunction observed so far.
        months_since_onset: (patients,) months since symptom onset (nan if asymptomatic).
        lmn_only_before: (patients,) the findings accumulated by the previous visit were
            LMN-only (:func:`lmn_only`): an LMN-only picture now confirms PMA.

    Returns:
        (diagnosis category strings, gold_coast booleans).
    """
    symptomatic = np.isfinite(months_since_onset)
    any_lmn = lmn_seen.any(axis=1) & symptomatic
    any_umn = umn_seen.any(axis=1) & symptomatic
    dx = np.full(len(any_lmn), "none", dtype=object)
    dx[any_lmn & lmn_only_before] = "PMA"
    dx[any_umn & (np.nan_to_num(months_since_onset, nan=-1) >= PLS_MONTHS)] = "PLS"
    dx[any_lmn & any_umn] = "ALS"
    gold = symptomatic & ((lmn_seen & umn_seen).any(axis=1) | (lmn_seen.sum(axis=1) >= 2))
    return dx, gold
