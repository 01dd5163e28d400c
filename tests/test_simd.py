"""The tables do not depend on the compiler's vector width (progression.simd).

The same 100-patient trial run in three processes: as imported (512-bit vectors where the CPU
has AVX-512), with ``PROGRESSION_VECTOR_WIDTH=256`` (LLVM's default width) and on numba's
``generic`` CPU (SSE2 only: 128-bit vectors and no fused multiply-add), every table compared.
The kernel keeps its sums in fixed lanes, so the widths agree to the bit; the MUNE's compiled
pass contracts multiply-adds where the CPU has FMA (fastmath "contract"), so on the generic CPU
its values are other numbers and only that column is left out of that comparison.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import llvmlite.binding as ll
import polars as pl
import pytest

from progression import simd

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("patients", "visits", "muscles", "events")
KEYS = ["patient_id", "arm", "month", "muscle", "side", "event"]


def _run(out: Path, **env: str) -> str:
    """Run the shipped trial for 100 patients in a fresh process; returns the CPU features
    numba compiled for there."""
    ours = ("NUMBA_CPU", simd.WIDTH_VARIABLE)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    code = (
        "import sys, progression\n"
        "from progression.studies.cli import main\n"
        "from numba.core import registry\n"
        "code = main(['run', sys.argv[1], '--out', sys.argv[2], '--patients', '100', "
        "'--workers', '1'])\n"
        "print('features:' + registry.cpu_target.target_context.codegen()._tm_features)\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "scenarios" / "trial_als.toml"), str(out)],
        env={**environ, **env}, capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1].removeprefix("features:")


def _tables(run: Path) -> dict[str, pl.DataFrame]:
    out = {}
    for name in TABLES:
        df = pl.read_parquet(run / name / "**" / "*.parquet", hive_partitioning=True)
        out[name] = df.sort([k for k in KEYS if k in df.columns])
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("simd")
    features = {
        "default": _run(tmp / "default"),
        "256": _run(tmp / "256", PROGRESSION_VECTOR_WIDTH="256"),
        "generic": _run(tmp / "generic", NUMBA_CPU_NAME="generic"),
    }
    return features, {name: _tables(tmp / name) for name in features}


def test_512_and_256_bit_vectors_give_the_same_tables(runs):
    features, tables = runs
    if ll.get_host_cpu_features().get("avx512f", False):  # the two widths did differ
        assert features["default"].endswith("-prefer-256-bit")
        assert "-prefer-256-bit" not in features["256"]
    for name in TABLES:
        assert tables["default"][name].equals(tables["256"][name]), name


def test_sse2_without_fma_gives_the_same_tables_but_the_mune(runs):
    _, tables = runs
    for name in TABLES:
        a, b = tables["default"][name], tables["generic"][name]
        if name == "muscles":
            assert not a["mune"].equals(b["mune"])  # the FMA does differ: the test can see it
            a, b = a.drop("mune"), b.drop("mune")
        assert a.equals(b), name


def test_wide_vectors_only_where_they_apply(monkeypatch):
    class Features(dict):
        def flatten(self):
            return ",".join(("+" if v else "-") + k for k, v in self.items())

    for var in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", simd.WIDTH_VARIABLE):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(ll, "get_host_cpu_features", lambda: Features(avx2=True, avx512f=True))
    assert simd.wide_vector_features() == "+avx2,+avx512f,-prefer-256-bit"
    monkeypatch.setenv(simd.WIDTH_VARIABLE, "256")
    assert simd.wide_vector_features() is None
    monkeypatch.delenv(simd.WIDTH_VARIABLE)
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2")  # the user's own choice stands
    assert simd.wide_vector_features() is None
    monkeypatch.delenv("NUMBA_CPU_FEATURES")
    monkeypatch.setattr(ll, "get_host_cpu_features", lambda: Features(avx2=True, avx512f=False))
    assert simd.wide_vector_features() is None
