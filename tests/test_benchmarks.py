"""The benchmark's ``--scale`` mode (issue 18), at a tiny size: the figures it reports exist
and agree with the run it wrote (the million-patient run itself is not for CI)."""

from __future__ import annotations

import importlib.util
import json

import polars as pl
import pytest

from analysis.timing import QUERIES
from tests.conftest import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scale_mode_reports_the_run_it_wrote(tmp_path):
    out, js = tmp_path / "run", tmp_path / "scale.json"
    res = _bench().main(["--scale", "--scale-patients", "12", "--out", str(out), "--json", str(js)])
    assert json.loads(js.read_text())["patients"] == 12
    patients = pl.read_parquet(out / "patients" / "**" / "*.parquet", hive_partitioning=True)
    assert patients["patient_id"].n_unique() == 12
    size = sum(f.stat().st_size for f in out.rglob("*.parquet"))
    assert res["output_bytes_per_patient_year"] * res["patient_years"] == pytest.approx(size)
    assert 0 < res["patient_years"] <= 12 * 10
    assert res["patient_years_per_second"] * res["wall_s"] == pytest.approx(res["patient_years"])
    assert res["peak_rss_mb_largest_worker"] > 50  # a worker imports numpy, numba, polars
    assert res["analysis_query_seconds"].keys() == {f"{q}_s" for q in QUERIES}
    # Each query's own process: at least the interpreter with polars.
    rss = res["analysis_query_peak_rss_mb"]
    assert rss.keys() == set(QUERIES) and all(30 < v < 2000 for v in rss.values())


def test_queries_mode_times_an_existing_run(tmp_path):
    out = tmp_path / "run"
    _bench().main(["--scale", "--scale-patients", "6", "--out", str(out)])
    res = _bench().main(["--queries", str(out)])
    assert res["mode"] == "queries" and res["analysis_query_seconds"].keys() == {
        f"{q}_s" for q in QUERIES
    }
