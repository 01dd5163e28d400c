"""Cumulative hazards per compartment, and the onset of each compartment (focal spread).

A neuron dies at the first time its cumulative hazard passes its Exp(1) threshold drawn once
(time-to-event, exact for any step). Hazards are written ``h = rate_p * weight_i`` for
``t >= onset_pc``; the per-unit part lives in the scaled threshold ``E_i / weight_i``, so the
per-step work is adding ``rate * dt`` to a (patients, compartments) array.
"""

from __future__ import annotations

import numpy as np

from progression.body import COMPARTMENTS, CONTIGUITY


def advance(
    cumulative: np.ndarray, rate: np.ndarray, onset: np.ndarray, t0: float, t1: float
) -> None:
    """Add the hazard of the step ``[t0, t1)`` (months) in place.

    Args:
        cumulative: (patients, compartments) cumulative hazard so far.
        rate: (patients,) hazard per month of a weight-1 neuron (1/month), 0 for the dead.
        onset: (patients, compartments) month the process starts there (inf: never).
    """
    exposure = np.clip(t1 - onset, 0.0, t1 - t0)
    cumulative += rate[:, None] * exposure


def spread_onsets(
    origin: np.ndarray,
    start: np.ndarray,
    rostrocaudal: np.ndarray,
    contralateral: np.ndarray,
    jump_to: np.ndarray,
    jump_delay: np.ndarray,
) -> np.ndarray:
    """Onset month of each compartment for a focal process that spreads to its neighbours.

    The onset compartment starts at ``start``; each contiguous compartment starts a drawn delay
    after its neighbour (shortest path over :data:`~progression.body.CONTIGUITY`); an optional
    non-contiguous jump seeds ``jump_to`` at ``start + jump_delay`` (``jump_to = -1``: none).

    Args:
        origin: (patients,) onset compartment index.
        start: (patients,) process onset (months).
        rostrocaudal: (patients, edges) delay of each contiguity edge, used for region edges.
        contralateral: (patients, edges) delay of each edge, used for the other-side edges.
        jump_to: (patients,) compartment reached by a jump, or -1.
        jump_delay: (patients,) months from process onset to the jump.

    Returns:
        (patients, compartments) onset months.
    """
    n = origin.shape[0]
    rows = np.arange(n)
    onset = np.full((n, len(COMPARTMENTS)), np.inf)
    onset[rows, origin] = start
    jumped = jump_to >= 0
    onset[rows[jumped], jump_to[jumped]] = np.minimum(
        onset[rows[jumped], jump_to[jumped]], start[jumped] + jump_delay[jumped]
    )
    for _ in range(len(COMPARTMENTS) - 1):  # Bellman-Ford relaxation on a 6-node graph
        for e, (a, b, kind) in enumerate(CONTIGUITY):
            w = contralateral[:, e] if kind == "contralateral" else rostrocaudal[:, e]
            np.minimum(onset[:, b], onset[:, a] + w, out=onset[:, b])
            np.minimum(onset[:, a], onset[:, b] + w, out=onset[:, a])
    return onset
