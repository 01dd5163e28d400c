"""A parameter's distribution across patients: :class:`Dist` (its kinds, parameters, support
and draws).

A scenario gives a parameter that differs across patients as a number (the same for everyone) or
an inline table such as ``{ dist = "lognormal", median = 0.05, sigma = 0.5 }``; reading and
checking that table is :mod:`progression.validation`'s job, drawing from it is this module's.
Imports only :mod:`progression.random` (the keyed streams), numpy and scipy's normal CDF.
:func:`correlate` couples parameters through a Gaussian copula (``[cohort.correlations]``).
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass

import numpy as np
from scipy import special

from progression import random as rnd


@dataclass(frozen=True)
class Dist:
    """A parameter's distribution across patients.

    Kinds: ``constant`` (value), ``normal`` (mean, sd), ``lognormal`` (median, sigma: the sd of
    the log), ``uniform`` (low, high). ``min``/``max`` clip any kind. Draws use one standard
    normal (or uniform) per patient from a stream named after the parameter's key path, so that
    changing a distribution's parameters moves every patient's value smoothly (common random
    numbers across sweeps and arms).
    """

    kind: str
    params: tuple[tuple[str, float], ...]
    lo: float = -math.inf
    hi: float = math.inf

    KINDS: typing.ClassVar[dict[str, tuple[str, ...]]] = {
        "constant": ("value",),
        "normal": ("mean", "sd"),
        "lognormal": ("median", "sigma"),
        "uniform": ("low", "high"),
    }

    @classmethod
    def constant(cls, value: float) -> Dist:
        return cls("constant", (("value", float(value)),))

    @property
    def p(self) -> dict[str, float]:
        return dict(self.params)

    def support(self) -> tuple[float, float]:
        """Smallest and largest values the distribution can give."""
        p = self.p
        lo, hi = {
            "constant": (p.get("value", 0.0), p.get("value", 0.0)),
            "normal": (-math.inf, math.inf) if p.get("sd", 0) > 0 else (p.get("mean", 0),) * 2,
            "lognormal": (0.0, math.inf),
            "uniform": (p.get("low", 0.0), p.get("high", 0.0)),
        }[self.kind]
        # Clipping maps both ends into [min, max] (a constant 5 with min = 10 is always 10).
        return min(max(lo, self.lo), self.hi), min(max(hi, self.lo), self.hi)

    @property
    def center(self) -> float:
        """A typical value (mean, median or midpoint), clipped."""
        p = self.p
        c = {
            "constant": p.get("value"),
            "normal": p.get("mean"),
            "lognormal": p.get("median"),
            "uniform": (p.get("low", 0) + p.get("high", 0)) / 2,
        }[self.kind]
        return float(np.clip(c, self.lo, self.hi))

    def from_normal(self, z: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Values for standard normals ``z`` (and uniforms ``u`` for the uniform kind)."""
        p = self.p
        if self.kind == "constant":
            x = np.full(z.shape, p["value"])
        elif self.kind == "normal":
            x = p["mean"] + p["sd"] * z
        elif self.kind == "lognormal":
            x = p["median"] * np.exp(p["sigma"] * z)
        else:
            x = p["low"] + (p["high"] - p["low"]) * u
        return np.clip(x, self.lo, self.hi)

    def sample(self, seed: int, path: str, patient_ids: np.ndarray, n: int = 1) -> np.ndarray:
        """(patients, n) draws, keyed by (seed, key path, patient id)."""
        z = rnd.normal(seed, f"param:{path}", patient_ids, n)
        u = rnd.uniform(seed, f"param-u:{path}", patient_ids, n)
        return self.from_normal(z, u)

    def normal_scores(
        self, seed: int, path: str, patient_ids: np.ndarray, n: int = 1
    ) -> np.ndarray:
        """(patients, n) standard normal scores of the draws :meth:`sample` makes: its normals,
        or for the uniform kind the normal quantiles of its uniforms."""
        if self.kind == "uniform":
            return special.ndtri(rnd.uniform(seed, f"param-u:{path}", patient_ids, n))
        return rnd.normal(seed, f"param:{path}", patient_ids, n)

    def from_scores(self, z: np.ndarray) -> np.ndarray:
        """Values for standard normal scores ``z`` (the uniform kind through the normal CDF)."""
        return self.from_normal(z, special.ndtr(z) if self.kind == "uniform" else z)


def correlate(scores: dict[str, np.ndarray], matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Standard normal scores of several parameters, correlated across parameters (a Gaussian
    copula) and nothing else changed.

    Each parameter's patient-level score is ``t = sqrt(n) * mean of its n scores`` (its only
    score when ``n = 1``); the patients' ``t`` are correlated by the Cholesky factor ``L`` of
    ``matrix``, ``t' = L t``, and each score moves by ``(t' - t) / sqrt(n)``. So every score
    stays standard normal, the n scores of one patient stay independent of each other, the
    patient-level scores of different parameters have correlation ``matrix``, and an identity
    ``matrix`` changes nothing, to the last bit.

    Args:
        scores: parameter -> (patients, n) standard normal scores, in the order of ``matrix``.
        matrix: (k, k) correlation matrix, symmetric positive definite.
    """
    names = list(scores)
    width = np.sqrt([scores[k].shape[1] for k in names])
    t = np.column_stack([scores[k].mean(axis=1) * w for k, w in zip(names, width, strict=True)])
    chol = np.linalg.cholesky(np.asarray(matrix, dtype=float))
    # ``t @ chol.T`` term by term: a matrix product may round a row differently with the number
    # of rows (BLAS kernels), and a patient's values must not depend on its chunk.
    moved = np.zeros_like(t)
    for i in range(len(names)):
        for j in range(i + 1):
            moved[:, i] += chol[i, j] * t[:, j]
    return {k: scores[k] + ((moved[:, i] - t[:, i]) / width[i])[:, None]
            for i, k in enumerate(names)}
