"""progression: population-scale simulation of motor neuron disease, one motor unit at a time."""

__version__ = "0.3.0"
