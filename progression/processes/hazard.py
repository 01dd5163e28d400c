"""Cumulative hazards per compartment, and the onset of each compartment (focal spread).

A neuron dies at the first time its cumulative hazard passes its Exp(1) threshold drawn once
(time-to-event, exact for any step). Hazards are written ``h = rate_p * weight_i`` for
``t >= onset_pc``; the per-unit part lives in the scaled threshold ``E_i / weight_i``, so the
per-step work is adding ``rate * dt`` to a (patients, compartments) array.
"""

from __future__ import annotations

import numpy as np

from progression.body import COMPARTMENTS, CONTIGUITY, LEVEL_EDGES, LEVEL_NODES, SPREAD_SHARE


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


def region_delays(
    patient_delay: np.ndarray, scores: np.ndarray, sigma: float, bounds: tuple[float, float]
) -> np.ndarray:
    """Delay of each pair of neighbouring regions: the patient's spread delay times a lognormal
    factor of median 1, ``d_pe = clip(D_p * exp(sigma * z_pe), *bounds)``.

    A patient's disease spreads at the patient's pace (its delay ``D_p`` may be correlated with
    its speed), and one pair of regions differs from another by the scatter ``sigma``.

    Args:
        patient_delay: (patients,) the patient's spread delay D_p (months).
        scores: (patients, edges) standard normal scores z_pe, one per pair of regions.
        sigma: log SD of the scatter (0: every pair takes D_p).
        bounds: (low, high) months the delays stay within (the delay distribution's support).

    Returns:
        (patients, edges) delays (months).
    """
    return np.clip(patient_delay[:, None] * np.exp(sigma * scores), *bounds)


def spread_onsets(
    origin: np.ndarray,
    start: np.ndarray,
    rostrocaudal: np.ndarray,
    contralateral: np.ndarray,
    jump_to: np.ndarray,
    jump_delay: np.ndarray,
    bulbar_resistance: float = 1.0,
) -> np.ndarray:
    """Onset month of each compartment for a focal process that spreads to its neighbours.

    The onset compartment starts at ``start``; each contiguous compartment starts a drawn delay
    after its neighbour (shortest path over :data:`~progression.body.CONTIGUITY`); an optional
    non-contiguous jump seeds ``jump_to`` at ``start + jump_delay`` (``jump_to = -1``: none).

    Args:
        origin: (patients,) onset compartment index.
        start: (patients,) process onset (months).
        rostrocaudal: (patients, edges) delay of each contiguity edge, used for region edges
            (times the edge's :data:`~progression.body.SPREAD_SHARE`).
        contralateral: (patients, edges) delay of each edge, used for the other-side edges.
        jump_to: (patients,) compartment reached by a jump, or -1.
        jump_delay: (patients,) months from process onset to the jump.
        bulbar_resistance: spread from the spinal cord into the bulbar region takes this many
            times the drawn delay (the way down takes the delay itself).

    Returns:
        (patients, compartments) onset months.
    """
    kinds = np.array([kind == "contralateral" for _, _, kind in CONTIGUITY])
    delay = np.where(kinds, contralateral, rostrocaudal * np.array(SPREAD_SHARE))
    pairs = [(a, b) for a, b, _ in CONTIGUITY]
    back = delay * _into_bulbar(pairs, lambda i: COMPARTMENTS[i][0], bulbar_resistance)
    return graph_onsets(
        len(COMPARTMENTS), pairs, delay, origin, start, jump_to, jump_delay, back=back
    )


def _into_bulbar(pairs, region_of, resistance: float) -> np.ndarray:
    """(edges,) factor on the delay from ``b`` to ``a`` of each edge ``(a, b)``: the bulbar
    resistance where that way enters the bulbar region from another, else 1."""
    return np.array([
        resistance if region_of(a) == "bulbar" and region_of(b) != "bulbar" else 1.0
        for a, b in pairs
    ])


def level_onsets(
    origin: np.ndarray,
    start: np.ndarray,
    rostrocaudal: np.ndarray,
    contralateral: np.ndarray,
    level_delay: np.ndarray,
    jump_to: np.ndarray,
    jump_delay: np.ndarray,
    bulbar_resistance: float = 1.0,
) -> np.ndarray:
    """Onset month of each spinal level (:data:`~progression.body.LEVEL_NODES`) for a focal
    process that spreads level by level within a compartment and across to its neighbours.

    Args:
        origin, jump_to: (patients,) onset level node, and the node a jump reaches (or -1).
        start, jump_delay: (patients,) as for :func:`spread_onsets` (months).
        rostrocaudal, contralateral: (patients, contiguity edges) delays (months), as for
            :func:`spread_onsets`; a contralateral delay joins every level to its mirror.
        level_delay: (patients,) months from one level to the next within a compartment.
        bulbar_resistance: as for :func:`spread_onsets`.

    Returns:
        (patients, level nodes) onset months.
    """
    columns = []
    for _, _, kind, e in LEVEL_EDGES:
        if kind == "level":
            columns.append(level_delay)
        else:
            columns.append(
                contralateral[:, e] if kind == "contralateral"
                else rostrocaudal[:, e] * SPREAD_SHARE[e]
            )
    pairs = [(a, b) for a, b, _, _ in LEVEL_EDGES]
    delay = np.stack(columns, axis=1)
    region = [COMPARTMENTS[c][0] for c, _ in LEVEL_NODES]
    back = delay * _into_bulbar(pairs, region.__getitem__, bulbar_resistance)
    return graph_onsets(
        len(LEVEL_NODES), pairs, delay, origin, start, jump_to, jump_delay, back=back
    )


def graph_onsets(
    nodes: int,
    edges: list[tuple[int, int]],
    delay: np.ndarray,
    origin: np.ndarray,
    start: np.ndarray,
    jump_to: np.ndarray,
    jump_delay: np.ndarray,
    back: np.ndarray | None = None,
) -> np.ndarray:
    """Earliest arrival (months) at every node of a graph from ``origin`` at ``start``, an
    edge taking ``delay`` months one way and ``back`` months the other, plus an optional jump
    to ``jump_to`` at ``start + jump_delay`` (Bellman-Ford relaxation, vectorised over
    patients).

    Args:
        nodes: number of nodes.
        edges: (a, b) node pairs.
        delay: (patients, edges) months from ``a`` to ``b`` of each edge.
        back: (patients, edges) months from ``b`` to ``a`` (default: ``delay``).
        origin, jump_to: (patients,) node indices (``jump_to = -1``: no jump).
        start, jump_delay: (patients,) months.
    """
    back = delay if back is None else back
    n = origin.shape[0]
    rows = np.arange(n)
    onset = np.full((n, nodes), np.inf)
    onset[rows, origin] = start
    jumped = jump_to >= 0
    onset[rows[jumped], jump_to[jumped]] = np.minimum(
        onset[rows[jumped], jump_to[jumped]], start[jumped] + jump_delay[jumped]
    )
    for _ in range(nodes - 1):
        before = onset.copy()
        for e, (a, b) in enumerate(edges):
            np.minimum(onset[:, b], onset[:, a] + delay[:, e], out=onset[:, b])
            np.minimum(onset[:, a], onset[:, b] + back[:, e], out=onset[:, a])
        if np.array_equal(before, onset):
            break
    return onset
