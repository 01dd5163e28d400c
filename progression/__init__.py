"""progression: population-scale simulation of motor neuron disease, one motor unit at a time."""

from progression.simd import prefer_wide_vectors

__version__ = "0.3.0"

# Before anything is compiled: 512-bit vectors where the CPU has them (progression.simd).
prefer_wide_vectors()
