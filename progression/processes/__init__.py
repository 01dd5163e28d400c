"""Disease processes: small pure functions over the chunk's state arrays.

Each module holds one process, documented with its units; :mod:`progression.model` calls them
in one visible order. None of them draws random numbers: every random quantity (thresholds,
delays, speeds) is drawn once at set-up, keyed by patient id (:mod:`progression.random`).
"""
