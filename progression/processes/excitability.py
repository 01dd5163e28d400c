"""Excitability of sick lower motor neurons, from which fasciculations follow (MODEL.md 6).

Persistent Na+ current up and K+ conductance down move the resting potential toward threshold;
the margin between them narrows with the neuron's sickness ``s``:
``margin = margin_mv * (1 - s) ** p`` (mV). Noise in the membrane potential (sd ``noise_mv``)
crosses a margin ``mu`` at the escape rate ``max_rate * exp(-mu**2 / (2 sigma**2))`` (per minute).
"""

from __future__ import annotations

import numpy as np


def margin(sick: np.ndarray, margin_mv: float, exponent: float) -> np.ndarray:
    """Excitability margin (mV) of each unit."""
    return margin_mv * (1.0 - sick) ** exponent


def discharge_rate(mu: np.ndarray, noise_mv: float, max_rate_per_min: float) -> np.ndarray:
    """Spontaneous discharge (fasciculation) rate of each unit (per minute)."""
    return max_rate_per_min * np.exp(-(mu**2) / (2.0 * noise_mv**2))
