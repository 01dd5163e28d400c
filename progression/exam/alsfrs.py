"""An ALSFRS-R-like functional score and slow vital capacity from the regional state.

Each of the 12 items scores 4 (normal) to 0 by thresholds on the function it depends on (mean
strength fraction of the muscles serving it, UMN weakness included). Per-patient jitter of the
thresholds makes the total fall in single-point steps at different times in different patients.
"""

from __future__ import annotations

import numpy as np


def vital_capacity(respiratory: np.ndarray) -> np.ndarray:
    """Vital capacity (fraction of the person's healthy value) from inspiratory strength.

    ``1 - (1 - s)**2``: flat near full strength (VC is insensitive to mild weakness), 51% at 30%
    strength (hypercapnia likely when strength is below 30% or VC below 55%: Braun 1983 Thorax
    38:616), and falling steeply once weakness is severe.
    """
    s = np.clip(respiratory, 0.0, 1.0)
    return 1.0 - (1.0 - s) ** 2


def strength_for_vc(vc: float) -> float:
    """Inspiratory strength at which :func:`vital_capacity` equals ``vc``."""
    return float(1.0 - np.sqrt(1.0 - vc))


def _vc_thresholds(*vcs: float) -> tuple[float, ...]:
    return tuple(round(strength_for_vc(v), 3) for v in vcs)


#: Item -> (muscles it reads: (name, side or None for both), thresholds for 4/3/2/1 points).
#: A function at or above the first threshold scores 4, below the last scores 0.
STANDARD = (0.75, 0.55, 0.35, 0.15)
#: The respiratory items are anchored on vital capacity (% predicted), then converted to
#: inspiratory strength by :func:`strength_for_vc`: non-invasive ventilation is offered below
#: about 50% (Medicare criterion; FVC 49 +/- 23% when NIV actually started, bodymap.md B), so
#: respiratory insufficiency scores 3 (intermittent NIV) below 50%, 2 below 40%, 1 below 33%
#: and 0 (invasive ventilation) below 28%, near death without ventilation. Dyspnoea and
#: orthopnoea (diaphragm) are reported late in ALS, on the same scale, orthopnoea a little
#: earlier. Each patient's item jitter shifts these as for every item.
VC_DYSPNOEA = (0.50, 0.40, 0.33, 0.28)
VC_ORTHOPNOEA = (0.55, 0.45, 0.35, 0.28)
VC_INSUFFICIENCY = (0.50, 0.40, 0.33, 0.28)
ITEMS: dict[str, tuple[tuple[tuple[str, str | None], ...], tuple[float, ...]]] = {
    "speech": ((("tongue", None),), STANDARD),
    "salivation": ((("tongue", None),), (0.65, 0.45, 0.3, 0.12)),
    "swallowing": ((("tongue", None),), (0.7, 0.5, 0.3, 0.12)),
    "handwriting": ((("APB", "right"), ("FDI", "right"), ("ADM", "right")), STANDARD),
    "cutting_food": ((("APB", None), ("FDI", None), ("biceps", None)), STANDARD),
    "dressing": ((("APB", None), ("FDI", None), ("biceps", None), ("quadriceps", None)), STANDARD),
    "turning_in_bed": (
        (("biceps", None), ("quadriceps", None), ("intercostals", None)),
        (0.65, 0.45, 0.3, 0.12),
    ),
    "walking": ((("TA", None), ("EDB", None), ("quadriceps", None)), STANDARD),
    "climbing_stairs": ((("TA", None), ("quadriceps", None)), (0.85, 0.65, 0.45, 0.25)),
    "dyspnoea": ((("diaphragm", None), ("intercostals", None)), _vc_thresholds(*VC_DYSPNOEA)),
    "orthopnoea": ((("diaphragm", None),), _vc_thresholds(*VC_ORTHOPNOEA)),
    "respiratory_insufficiency": (
        (("diaphragm", None), ("intercostals", None)),
        _vc_thresholds(*VC_INSUFFICIENCY),
    ),
}
SUBSCORES = {
    "bulbar": ("speech", "salivation", "swallowing"),
    "fine_motor": ("handwriting", "cutting_food", "dressing"),
    "gross_motor": ("turning_in_bed", "walking", "climbing_stairs"),
    "respiratory": ("dyspnoea", "orthopnoea", "respiratory_insufficiency"),
}


def item_muscles(body) -> dict[str, np.ndarray]:
    """Muscle indices each item reads (empty if the body map lacks them)."""
    out = {}
    for item, (muscles, _) in ITEMS.items():
        idx = [
            i
            for i, m in enumerate(body.muscles)
            for name, side in muscles
            if m.name == name and (side is None or m.side == side)
        ]
        out[item] = np.array(idx, dtype=np.int64)
    return out


def items(strength: np.ndarray, muscles: dict[str, np.ndarray], jitter: np.ndarray) -> dict:
    """Item scores 0-4 (int8) for each visited patient.

    Args:
        strength: (patients, muscles) strength fractions.
        muscles: from :func:`item_muscles`.
        jitter: (patients, 12) threshold shifts (patient plus visit noise, SDs
            ``exam.alsfrs_subject_sd`` and ``exam.alsfrs_visit_sd``).
    """
    out = {}
    for j, (item, (_, thresholds)) in enumerate(ITEMS.items()):
        idx = muscles[item]
        f = strength[:, idx].mean(axis=1) if len(idx) else np.ones(strength.shape[0])
        thr = np.array(thresholds)[None, :] + jitter[:, j : j + 1]
        out[item] = (f[:, None] >= thr).sum(axis=1).astype(np.int8)
    return out


def svc_percent(respiratory: np.ndarray, baseline: np.ndarray, z: np.ndarray, cov: float):
    """Slow vital capacity (% predicted): :func:`vital_capacity` of inspiratory strength times
    the patient's healthy value, with log-normal test-retest noise of CoV ``cov`` (always
    positive)."""
    return baseline * vital_capacity(respiratory) * np.exp(cov * z - cov**2 / 2)
