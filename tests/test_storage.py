"""Storage: hive layout, atomic files, metadata, manifest and resume bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from progression import storage
from progression.manifest import ChunkRecord, Manifest

META = storage.file_metadata("ab" * 32, "0.0.test")


def visits(first: int, arms: tuple[str, ...] = ("placebo", "treated")) -> pa.Table:
    """Two patients x two months per arm, ids from ``first``."""
    rows = [
        (arm, pid, month, "ALS" if month else "none")
        for arm in arms
        for pid in (first, first + 1)
        for month in (0.0, 3.0)
    ]
    arm, pid, month, diagnosis = zip(*rows, strict=True)
    return pa.table(
        {
            "patient_id": pa.array(pid, pa.int64()),
            "arm": pa.array(arm, pa.string()),
            "month": pa.array(month, pa.float64()),
            "diagnosis": pa.array(diagnosis, pa.string()),
        }
    )


def no_events() -> pa.Table:
    schema = pa.schema([("patient_id", pa.int64()), ("arm", pa.string()), ("event", pa.string())])
    return schema.empty_table()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    for k in range(3):
        tables = {"visits": visits(2 * k), "events": no_events()}
        storage.write_chunk(out, k, tables, metadata=META, arms=("placebo", "treated"))
    return out


def test_layout_is_hive_partitioned(run_dir: Path) -> None:
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.parquet"))
    assert len(files) == 2 * 2 * 3  # tables x arms x chunks
    assert "visits/arm=placebo/chunk=00000/part-0.parquet" in files
    assert "events/arm=treated/chunk=00002/part-0.parquet" in files
    other = [p for p in (run_dir / "visits").rglob("*") if p.is_file() and p.suffix != ".parquet"]
    assert not other


def test_partition_columns_only_in_path_and_metadata_present(run_dir: Path) -> None:
    path = run_dir / "visits" / "arm=treated" / "chunk=00001" / "part-0.parquet"
    schema = pq.read_schema(path)
    assert "arm" not in schema.names and "chunk" not in schema.names
    assert pa.types.is_dictionary(schema.field("diagnosis").type)
    meta = pq.read_metadata(path)
    assert meta.row_group(0).column(0).compression == "ZSTD"
    kv = {k.decode(): v.decode() for k, v in meta.metadata.items()}
    assert set(kv) >= {storage.META_HASH, storage.META_VERSION}  # the hash, not the text
    assert kv[storage.META_HASH] == "ab" * 32
    assert kv[storage.META_VERSION] == "0.0.test"
    assert set(pq.read_table(path)["patient_id"].to_pylist()) == {2, 3}


def test_readable_by_pyarrow_dataset_and_polars(run_dir: Path) -> None:
    table = ds.dataset(run_dir / "visits", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 3 * 2 * 2 * 2
    assert set(table["arm"].to_pylist()) == {"placebo", "treated"}
    assert set(table["chunk"].to_pylist()) == {0, 1, 2}
    frame = pl.read_parquet(run_dir / "visits", hive_partitioning=True)
    assert frame.height == table.num_rows
    assert frame.filter(pl.col("chunk") == 2)["patient_id"].unique().sort().to_list() == [4, 5]
    # an empty table still has a file per arm, so its schema is known
    events = pl.read_parquet(run_dir / "events", hive_partitioning=True)
    assert events.height == 0 and {"patient_id", "event", "arm"} <= set(events.columns)


def test_arms_without_rows_get_empty_files(tmp_path: Path) -> None:
    storage.write_chunk(
        tmp_path, 0, {"visits": visits(0, arms=("placebo",))}, metadata=META,
        arms=("placebo", "treated"),
    )
    empty = tmp_path / "visits" / "arm=treated" / "chunk=00000" / "part-0.parquet"
    assert pq.read_table(empty).num_rows == 0


def test_write_chunk_rejects_bad_tables(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="arm"):
        storage.write_chunk(tmp_path, 0, {"visits": visits(0).drop_columns(["arm"])}, metadata=META)
    with_chunk = visits(0).append_column("chunk", pa.array([0] * 8))
    with pytest.raises(ValueError, match="chunk"):
        storage.write_chunk(tmp_path, 0, {"visits": with_chunk}, metadata=META)
    with pytest.raises(ValueError, match="unknown table"):
        storage.write_chunk(tmp_path, 0, {"visit": visits(0)}, metadata=META)


@pytest.mark.parametrize("name", ["a/b", "x=y", "two words", "..", ""])
def test_unsafe_arm_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match="arm name"):
        storage.check_partition_value(name)


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target, tmp = tmp_path / "x.parquet", tmp_path / "t.tmp"
    original = pq.write_table

    def half_then_fail(table: pa.Table, where: object, **kw: object) -> None:
        original(table.slice(0, 0), where, **kw)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.pq, "write_table", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        storage.write_table_atomic(target, pa.table({"a": [1]}), tmp)
    assert not target.exists() and not tmp.exists()


def test_missing_files(run_dir: Path) -> None:
    arms = ["placebo", "treated"]
    assert storage.missing_files(run_dir, 1, ["visits", "events"], arms) == []
    (run_dir / "events" / "arm=treated" / "chunk=00001" / "part-0.parquet").unlink()
    missing = storage.missing_files(run_dir, 1, ["visits", "events"], arms)
    assert missing == [run_dir / "events" / "arm=treated" / "chunk=00001" / "part-0.parquet"]


def test_clear_chunk_and_remove_incomplete(run_dir: Path) -> None:
    tmp = run_dir / storage.TMP_DIR / "chunk=00001.visits.arm=placebo.abc.tmp"
    tmp.write_bytes(b"half a file")
    storage.clear_chunk(run_dir, 1)
    assert sorted(storage.chunk_dirs(run_dir)) == [0, 2]
    assert not tmp.exists()

    (run_dir / storage.TMP_DIR / "chunk=00002.x.tmp").write_bytes(b"")
    removed = storage.remove_incomplete(run_dir, complete={0})
    assert sorted(storage.chunk_dirs(run_dir)) == [0]
    assert removed and not (run_dir / storage.TMP_DIR).exists()
    storage.remove_tmp(run_dir)  # absent: no error


def manifest() -> Manifest:
    return Manifest(
        scenario_hash="ab" * 32, version="0.0.test", scenario_path="s.toml", patients=5, seed=1,
        arms=["placebo"], chunk_size=2, chunks=[[0, 2], [2, 4], [4, 5]],
    )


def test_manifest_round_trip_and_completion(tmp_path: Path) -> None:
    m = manifest()
    rec = ChunkRecord(chunk=1, first=2, stop=4, unit_steps=100, patient_years=1.5, bytes=10,
                      seconds=0.5)
    m.mark_complete(rec)
    m.mark_complete(rec)  # idempotent
    m.sessions.append({"wall_seconds": 2.0})
    m.update_throughput()
    m.save(tmp_path)
    loaded = Manifest.load(tmp_path)
    assert loaded == m
    assert loaded.completed_chunks() == {1} and not loaded.is_complete()
    assert loaded.totals()["patients"] == 2 and loaded.totals()["patient_years"] == 1.5
    assert loaded.throughput["unit_steps_per_second"] == 50.0
    data = json.loads((tmp_path / storage.MANIFEST).read_text())
    assert data["chunks"] == [[0, 2], [2, 4], [4, 5]]
    assert not list(tmp_path.glob(".*"))  # the atomic write left no temporary file
    with pytest.raises(ValueError, match="covers"):
        m.mark_complete(ChunkRecord(0, 0, 3, 1, None, 1, 0.1))


def test_manifest_unknown_patient_years(tmp_path: Path) -> None:
    m = manifest()
    m.mark_complete(ChunkRecord(0, 0, 2, 1, None, 1, 0.1))
    assert m.totals()["patient_years"] is None


def test_bad_manifest_is_a_value_error(tmp_path: Path) -> None:
    (tmp_path / storage.MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="not a progression manifest"):
        Manifest.load(tmp_path)
    (tmp_path / storage.MANIFEST).write_text('{"format": 99}')
    with pytest.raises(ValueError, match="format"):
        Manifest.load(tmp_path)


def test_small_helpers(tmp_path: Path) -> None:
    assert storage.is_empty_dir(tmp_path / "absent") and storage.is_empty_dir(tmp_path)
    storage.write_text_atomic(tmp_path / "a.txt", "hello")
    assert not storage.is_empty_dir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"12345")
    assert storage.dir_size(tmp_path) == 10
    assert storage.is_empty_dir(tmp_path, ignore=("a.txt", "sub"))
