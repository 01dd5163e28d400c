"""The vector width of the compiled functions.

LLVM, numba's compiler, vectorises loops in 256-bit registers even on CPUs that have 512-bit
ones (its "prefer-256-bit" tuning for AVX-512 chips, against the clock slowdown of wide vectors
on the first of them). The incremental MUNE's band draws (:mod:`progression.exam.scans`) run
about 12% faster in 512-bit vectors, and what the model computes does not depend on the vector
width: the kernel keeps its sums in fixed lanes (:data:`progression.kernel.LANES`) and no other
compiled function lets the compiler reorder a sum (``tests/test_simd.py`` runs a cohort with
each width and compares every table). So on a CPU with AVX-512, importing :mod:`progression`
asks numba for 512-bit vectors, as numba's own tests do: ``numba.config.CPU_FEATURES`` set to
the host's features and ``-prefer-256-bit``.

Left alone: a process where numba has already compiled something (its compiler is set up
once), a user's own ``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES``, numba's ``NUMBA_ENABLE_AVX=0``,
and ``PROGRESSION_VECTOR_WIDTH=256`` (LLVM's default width; the tables are the same).
"""

from __future__ import annotations

import os

#: Environment variable choosing the vector width: ``512`` (the default, where the CPU has
#: AVX-512) or ``256`` (LLVM's default).
WIDTH_VARIABLE = "PROGRESSION_VECTOR_WIDTH"


def wide_vector_features() -> str | None:
    """numba's CPU features for 512-bit vectors on this machine (the host's features and
    ``-prefer-256-bit``), or None where they do not apply: no AVX-512, AVX disabled in numba,
    the user's own CPU settings, or ``PROGRESSION_VECTOR_WIDTH=256``."""
    if os.environ.get(WIDTH_VARIABLE, "512") == "256":
        return None
    if "NUMBA_CPU_NAME" in os.environ or "NUMBA_CPU_FEATURES" in os.environ:
        return None
    from numba.core import config

    if not config.ENABLE_AVX or config.CPU_NAME:
        return None
    import llvmlite.binding as ll

    try:
        features = ll.get_host_cpu_features()
    except RuntimeError:  # LLVM cannot tell on this platform
        return None
    if not features.get("avx512f", False):
        return None
    return features.flatten() + ",-prefer-256-bit"


def prefer_wide_vectors() -> bool:
    """Ask numba for 512-bit vectors where :func:`wide_vector_features` applies; True if it
    did. Takes effect for the functions compiled (or loaded from numba's cache, which keeps
    each feature set apart) after it, if numba has compiled nothing before in the process."""
    features = wide_vector_features()
    if features is None:
        return False
    from numba.core import config

    config.CPU_FEATURES = features
    return True
