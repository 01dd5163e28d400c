"""Random numbers keyed by identity: the one place where randomness is made.

Every draw is a pure function of ``(scenario seed, stream, patient id, counter)``: a SplitMix64
sequence (Steele, Lea & Flood 2014) started from a key mixed out of the seed, the stream name and
the patient id. Draws are vectorised over patients, and a patient's numbers never depend on which
other patients share its chunk, on the number of workers, or on the arm it is simulated in
(common random numbers). Streams are named after what they feed (``"lmn"``, ``"exam"``,
``"param:disease.lmn.speed"``) so that adding a stream never shifts another.
"""

from __future__ import annotations

import zlib

import numba
import numpy as np

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic)."""
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    return x ^ (x >> _S31)


def stream_key(seed: int, stream: str) -> np.uint64:
    """A 64-bit key for one named stream of one scenario seed."""
    s = np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    c = np.array([zlib.crc32(stream.encode())], dtype=np.uint64)
    return _mix(_mix(s) ^ (c * _GAMMA))[0]


@numba.njit(inline="always")
def draw(start: np.uint64, counter: int) -> float:
    """The ``counter``-th (from 1) uniform of a stream started at ``start``, in compiled code:
    ``mix(start + counter * GAMMA)``, exactly the number :func:`uniform` gives (a loop may draw
    only the counters it needs)."""
    x = start + np.uint64(counter) * _GAMMA
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    x = x ^ (x >> _S31)
    return (np.float64(np.int64(x >> _S11)) + 0.5) * 1.1102230246251565e-16  # 2**-53


@numba.njit(cache=True, nogil=True)
def _fill(start: np.ndarray, offset: int, out: np.ndarray) -> None:
    for j in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[j, c] = draw(start[j], offset + c + 1)


def starts(seed: int, stream: str, patient_ids: np.ndarray) -> np.ndarray:
    """(patients,) uint64 start words of a stream, for compiled loops that draw lazily.

    The c-th draw (c >= 1) of a patient is ``mix(start + c * GAMMA)``, exactly the bits behind
    ``uniform(seed, stream, ids, n)[:, c - 1]``: a loop may draw only the counters it needs
    (see :mod:`progression.exam.scans`) and still get the numbers this module defines.
    """
    key = stream_key(seed, stream)
    pid = np.asarray(patient_ids, dtype=np.uint64).reshape(-1)
    return _mix(key ^ _mix(pid * _GAMMA + _GAMMA))


def uniform(seed: int, stream: str, patient_ids: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
    """(patients, n) uniforms on the open interval (0, 1), float64: draws ``offset + 1`` to
    ``offset + n`` of each patient's stream."""
    out = np.empty((np.size(patient_ids), n))
    _fill(starts(seed, stream, patient_ids), offset, out)
    return out


def exponential(seed: int, stream: str, patient_ids: np.ndarray, n: int) -> np.ndarray:
    """(patients, n) Exp(1) variates (float64), by inversion (in place: no temporaries)."""
    u = uniform(seed, stream, patient_ids, n)
    return np.negative(np.log(u, out=u), out=u)


def normal(seed: int, stream: str, patient_ids: np.ndarray, n: int) -> np.ndarray:
    """(patients, n) standard normal variates (float64), Box-Muller on paired uniforms:
    ``sqrt(-2 log u1) cos(2 pi u2)``, computed in place (the same operations in the same
    order, so the same numbers, without temporaries)."""
    u = uniform(seed, stream, patient_ids, 2 * n)
    radius, angle = u[:, :n], u[:, n:]
    np.log(radius, out=radius)
    np.multiply(radius, -2.0, out=radius)
    np.sqrt(radius, out=radius)
    np.multiply(angle, 2.0 * np.pi, out=angle)
    np.cos(angle, out=angle)
    return np.multiply(radius, angle)
