"""Trial screening and enrolment: who is eligible at a visit, and the trial's own calendar.

Screening reads only what the visit observed (diagnosis, ALSFRS-R, SVC) plus age and the
months since symptom onset the patient reports, as a trial site would.
"""

from __future__ import annotations

import numpy as np

from progression.scenario import Eligibility


def eligible(
    criteria: Eligibility,
    visit: dict[str, np.ndarray],
    months_since_onset: np.ndarray,
    age_years: np.ndarray,
) -> np.ndarray:
    """(patients,) whether each examined patient meets the inclusion criteria.

    Args:
        criteria: the trial's eligibility section.
        visit: the visit's columns (``diagnosis``, ``gold_coast``, ``alsfrs_r``, ``svc_percent``).
        months_since_onset: months since symptom onset at the visit (nan if asymptomatic).
        age_years: age at the visit (years).
    """
    dx = np.isin(visit["diagnosis"], criteria.diagnoses)
    if criteria.gold_coast:
        dx |= visit["gold_coast"]
    since = np.nan_to_num(months_since_onset, nan=np.inf)
    return (
        dx
        & (since <= criteria.max_months_since_onset)
        & (visit["alsfrs_r"] >= criteria.min_alsfrs_r)
        & (visit["alsfrs_r"] <= criteria.max_alsfrs_r)
        & (visit["svc_percent"] >= criteria.min_svc_percent)
        & (age_years >= criteria.min_age_years)
        & (age_years <= criteria.max_age_years)
    )


def dropout_after(exp1: np.ndarray, rate_per_month: float) -> np.ndarray:
    """Months from randomisation to dropout (inf when the rate is 0), from Exp(1) draws."""
    if rate_per_month <= 0:
        return np.full(exp1.shape, np.inf)
    return exp1 / rate_per_month
