"""Lower motor neuron death: one Exp(1) threshold per neuron, one hazard per compartment.

``h_i(t) = k_p * w_i`` once the neuron's compartment has started (MODEL.md section 2). The
*pattern* is the plug-in: it says which neurons carry the hazard (``w_i``) and whether the
disease starts focally and spreads or starts everywhere at once. Adding an LMN disease is one
weight function and one line in :data:`PATTERNS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from progression.body import Body


def focal_weight(params, body: Body) -> np.ndarray:
    """ALS: muscle vulnerability times size, ``w = v_m * (size / mean) ** nu``."""
    v = np.array([m.vulnerability for m in body.muscles])[body.muscle_of]
    return v * body.size_weight**params.size_exponent


def segmental_weight(params, body: Body) -> np.ndarray:
    """Anterior horn disease of chosen segments (spinal muscular atrophy, polio).

    A muscle's neurons carry the hazard in proportion to the share of its segments affected,
    so weakness follows myotomes, not regions or axon length.
    """
    affected = set(params.segments)
    share = np.array(
        [sum(s in affected for s in m.segments) / len(m.segments) for m in body.muscles]
    )
    return share[body.muscle_of] * body.size_weight**params.size_exponent


def length_dependent_weight(params, body: Body) -> np.ndarray:
    """Length-dependent axon loss: ``w = (L_m / L_ref) ** gamma``, distal (long) axons first."""
    length = np.array([m.axon_length_cm for m in body.muscles])[body.muscle_of]
    return (length / params.reference_length_cm) ** params.length_exponent * (
        body.size_weight**params.size_exponent
    )


@dataclass(frozen=True)
class Pattern:
    """An LMN disease pattern.

    Attributes:
        weight: (params, body) -> (units,) relative hazard of each neuron.
        spreads: True if the process starts in one compartment and spreads to its neighbours;
            False if every compartment starts at the process onset.
    """

    weight: Callable[[object, Body], np.ndarray]
    spreads: bool


PATTERNS: dict[str, Pattern] = {
    "focal": Pattern(focal_weight, spreads=True),
    "segmental": Pattern(segmental_weight, spreads=False),
    "length_dependent": Pattern(length_dependent_weight, spreads=False),
}


def scaled_thresholds(exp1: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``E_i / w_i`` (inf where a neuron carries no hazard): a neuron dies when its
    compartment's cumulative hazard passes this value."""
    out = np.full(np.broadcast_shapes(np.shape(exp1), np.shape(weight)), np.inf, np.float32)
    np.divide(exp1, weight, out=out, where=weight > 0, casting="same_kind")
    return out


def sickness(hazard_at_unit: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """``s_i = H_i / E_i`` in [0, 1] for living neurons: how far along its road to death
    (0 where a neuron carries no hazard: ``H / inf = 0``)."""
    return np.minimum(hazard_at_unit / threshold, np.float32(1.0))


def deaths(hazard_at_unit: np.ndarray, threshold: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """(patients, units) mask of living neurons whose cumulative hazard passed the threshold."""
    return alive & (hazard_at_unit > threshold)


def release_fibres(
    dying: np.ndarray, fibres: np.ndarray, alive: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """Kill the ``dying`` units in place and return their fibres per muscle (patients, muscles):
    they become orphans of their muscle."""
    orphaned = np.add.reduceat(np.where(dying, fibres, 0.0), starts, axis=1)
    fibres[dying] = 0.0
    alive[dying] = False
    return orphaned
