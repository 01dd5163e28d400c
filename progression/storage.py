"""Parquet dataset on disk: atomic hive-partitioned chunk writes, the manifest, resume bookkeeping.

Layout of a run folder ``DIR``::

    DIR/manifest.json                                  run record (see :class:`Manifest`)
    DIR/scenario.toml                                  the scenario text, overrides applied
    DIR/<table>/arm=<arm>/chunk=<k:05d>/part-0.parquet one file per table, arm and chunk

A run of several scenarios into one folder (a sweep, :mod:`progression.studies.sweep`) puts a
partition prefix before ``arm``, e.g. ``DIR/<table>/point=3/arm=<arm>/chunk=<k>/``; chunk
numbers count across the whole folder (the manifest's chunk index), so a chunk number names one
folder per table and arm whatever the prefix.

The partition columns (``arm``, ``chunk``, any prefix) live in the path only (hive convention),
never inside the files. Every Parquet file is first written under ``DIR/_tmp/`` (same
filesystem), flushed to disk and then ``os.replace``-d into place, so a reader never sees half a
file. The temporary files live outside the table folders on purpose: polars refuses a table
folder that holds any file other than ``*.parquet`` (hidden or not), so a leftover from a crash
there would break every reader.

Completion protocol: workers write a chunk's files and return a small record with each file's
size and SHA-256; only the process that owns the run (:mod:`progression.lock`) writes
``manifest.json`` (:mod:`progression.manifest`). A chunk is complete when, and only when, the
manifest lists it, which happens after all its files are in place; chunks written but not yet
recorded when the owner dies are redone on ``--resume``, after :func:`remove_incomplete` has
deleted their leftovers. What this program writes into a run folder is exactly
:func:`foreign_entries`'s complement: anything else there is the user's and is never deleted.
This module computes no physiology.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from progression.lock import LOCK

TABLES: tuple[str, ...] = ("patients", "visits", "muscles", "events", "scans")
"""Tables a chunk may produce; ``scans`` only when the scenario records them."""
PARTITIONS: tuple[str, ...] = ("arm", "chunk")
MANIFEST = "manifest.json"
TMP_DIR = "_tmp"
SCENARIO_COPY = "scenario.toml"
PART = "part-0.parquet"
RUN_FILES: tuple[str, ...] = (MANIFEST, SCENARIO_COPY, LOCK, "points.parquet", "summary.parquet")
"""Files this program writes at the top of a run folder (a sweep adds points and summary)."""

META_HASH = "progression.scenario_sha256"
META_VERSION = "progression.version"

_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.+-]+")
_UNSAFE_VALUES = frozenset({".", "..", "__HIVE_DEFAULT_PARTITION__"})
"""Values a hive reader cannot round-trip (the last reads back as null)."""
_TMP_SUFFIX = ".tmp"
_HIDDEN_TMP = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")


def check_partition_value(value: str) -> str:
    """Return ``value`` if it can be a hive partition value as is, else raise ValueError.

    Allowed: letters, digits and ``_ . + -`` (no escaping needed, so every reader agrees), except
    ``.``, ``..`` and ``__HIVE_DEFAULT_PARTITION__`` (which hive readers turn into null).
    """
    if not _SAFE_VALUE.fullmatch(value) or value in _UNSAFE_VALUES:
        raise ValueError(
            f"arm name {value!r} must use only letters, digits and _ . + - (and not be "
            "__HIVE_DEFAULT_PARTITION__)"
        )
    return value


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is empty or hive levels such as ``point=3``, else ValueError."""
    for level in prefix.split("/") if prefix else ():
        key, sep, value = level.partition("=")
        if not sep or not _SAFE_VALUE.fullmatch(key) or not _SAFE_VALUE.fullmatch(value):
            raise ValueError(f"partition prefix {prefix!r} must be levels like point=3")
    return prefix


def chunk_dirname(chunk: int) -> str:
    """Folder name of chunk ``chunk``: ``chunk=00007``."""
    return f"chunk={chunk:05d}"


def file_metadata(scenario_hash: str, version: str) -> dict[str, str]:
    """Key/value metadata stored in every Parquet file: the scenario's hash and the version (no
    wall-clock times, by design; the scenario's text is kept once, in ``scenario.toml``)."""
    return {META_HASH: scenario_hash, META_VERSION: version}


# ----------------------------------------------------------------------------------- atomic files


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{_TMP_SUFFIX}")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms/filesystems cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _atomic_file(path: Path, tmp: Path | None = None) -> Iterator[BinaryIO]:
    """A temporary file for ``path`` (default: hidden, beside it); once the block succeeds it is
    flushed, fsynced and renamed into place, and on any error it is removed."""
    tmp = _tmp_name(path) if tmp is None else Path(tmp)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    with _atomic_file(path) as f:
        f.write(data)
    _fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """UTF-8 text version of :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as a zstd-compressed Parquet file's bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_table_atomic(path: Path, table: pa.Table, tmp: Path | None = None) -> int:
    """Write ``table`` as zstd Parquet at ``path`` atomically; return the file size in bytes.

    ``tmp`` is the temporary file (same filesystem as ``path``); default: hidden, beside ``path``.
    """
    return _write_file(Path(path), parquet_bytes(table), tmp)["bytes"]


def _write_file(path: Path, data: bytes, tmp: Path | None = None) -> dict[str, Any]:
    """Write ``data`` atomically; return ``{"bytes": size, "sha256": digest}`` of what was
    written (computed from the same bytes, so the record describes the file exactly)."""
    with _atomic_file(path, tmp) as f:
        f.write(data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# ------------------------------------------------------------------------------------ chunk files


def encode_categories(table: pa.Table) -> pa.Table:
    """Dictionary-encode every string column (categories: muscle, region, side, diagnosis, ...)."""
    columns = []
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.dictionary_encode(col.cast(pa.string()))
        columns.append(col)
    return pa.Table.from_arrays(columns, names=table.column_names, metadata=table.schema.metadata)


def _split_by_arm(table: pa.Table, arms: tuple[str, ...]) -> dict[str, pa.Table]:
    """``{arm: rows of that arm without the arm column}``, including empty tables for ``arms``."""
    arm_col = table["arm"]
    if pa.types.is_dictionary(arm_col.type):
        arm_col = arm_col.cast(pa.string())
    body = table.drop_columns(["arm"])
    present = [a for a in pc.unique(arm_col).to_pylist() if a is not None]
    if arm_col.null_count:
        raise ValueError("arm column has nulls")
    out: dict[str, pa.Table] = {}
    for arm in dict.fromkeys([*arms, *sorted(present)]):
        out[arm] = body.filter(pc.equal(arm_col, arm)) if arm in present else body.slice(0, 0)
    return out


def write_chunk(
    out: Path,
    chunk: int,
    tables: dict[str, pa.Table],
    *,
    metadata: dict[str, str],
    arms: tuple[str, ...] = (),
    prefix: str = "",
) -> list[dict[str, Any]]:
    """Write one chunk's tables as ``out/<table>/[prefix/]arm=<arm>/chunk=<k>/part-0.parquet``.

    Args:
        out: run folder.
        chunk: chunk number k.
        tables: ``{table name: Arrow table}``; each must have an ``arm`` string column and no
            ``chunk`` column.
        metadata: key/value metadata for every file (see :func:`file_metadata`).
        arms: arms that get a file even when they have no rows (keeps the layout regular and the
            schema discoverable in every chunk).
        prefix: hive levels before ``arm=`` (e.g. ``point=3``; see :func:`check_prefix`).

    Returns:
        One record per file written: ``{"path": relative POSIX path, "bytes": size, "sha256":
        hex digest}`` (what the manifest keeps, see :mod:`progression.manifest`).
    """
    out = Path(out)
    check_prefix(prefix)
    tmp_dir = out / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, table in tables.items():
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
        if "arm" not in table.column_names:
            raise ValueError(f"table {name!r} has no 'arm' column")
        if "chunk" in table.column_names:
            raise ValueError(f"table {name!r} must not carry the 'chunk' partition column")
        extra = {k.encode(): v.encode() for k, v in metadata.items()}
        meta = {**(table.schema.metadata or {}), **extra}
        for arm, part in _split_by_arm(table, arms).items():
            arm_dir = f"arm={check_partition_value(arm)}"
            folder = out / name / prefix / arm_dir / chunk_dirname(chunk)
            folder.mkdir(parents=True, exist_ok=True)
            part = encode_categories(part).replace_schema_metadata(meta)
            tmp = tmp_dir / f"{chunk_dirname(chunk)}.{name}.arm={arm}.{uuid.uuid4().hex[:12]}.tmp"
            record = _write_file(folder / PART, parquet_bytes(part), tmp)
            files.append({"path": (folder / PART).relative_to(out).as_posix(), **record})
    return files


def chunk_dirs(out: Path) -> dict[int, list[Path]]:
    """``{k: [every out/<table>/[prefix/]arm=*/chunk=k folder]}`` found on disk."""
    found: dict[int, list[Path]] = {}
    for name in TABLES:
        for arm_dir in sorted((Path(out) / name).glob("**/arm=*")):
            for d in sorted(arm_dir.glob("chunk=*")):
                try:
                    k = int(d.name.removeprefix("chunk="))
                except ValueError:
                    continue
                found.setdefault(k, []).append(d)
    return found


def clear_chunk(out: Path, chunk: int) -> None:
    """Delete every file of chunk ``chunk``, temporary ones included (before (re)writing it)."""
    for d in chunk_dirs(out).get(chunk, []):
        shutil.rmtree(d, ignore_errors=True)
    for tmp in (Path(out) / TMP_DIR).glob(f"{chunk_dirname(chunk)}.*"):
        tmp.unlink(missing_ok=True)


def remove_incomplete(out: Path, complete: set[int]) -> list[Path]:
    """Delete chunk folders not in ``complete`` and all temporary files; return what went.

    Call it only while no chunk is being written (before a run's tasks start). Only this
    program's entries are touched (the table folders and ``_tmp``).
    """
    out = Path(out)
    removed: list[Path] = []
    if (out / TMP_DIR).exists():
        shutil.rmtree(out / TMP_DIR)
        removed.append(out / TMP_DIR)
    for k, dirs in chunk_dirs(out).items():
        if k not in complete:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
    for tmp in _leftover_tmp_files(out, in_tables=True):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _leftover_tmp_files(out: Path, in_tables: bool) -> list[Path]:
    """Hidden temporary files of atomic writes cut short: at the top of ``out`` and, with
    ``in_tables``, anywhere in its table folders."""
    hidden = [*out.glob(".*")]
    if in_tables:
        hidden += [p for name in TABLES if (out / name).is_dir() for p in (out / name).rglob(".*")]
    return [p for p in hidden if p.is_file() and _HIDDEN_TMP.fullmatch(p.name)]


def foreign_entries(out: Path) -> list[Path]:
    """Entries of the run folder ``out`` that this program did not write (sorted).

    Ours: :data:`RUN_FILES` and ``_tmp`` at the top (plus hidden temporary files of atomic
    writes), and in each table folder only hive folders (``key=value``) holding ``part-0.parquet``
    (or its hidden temporary files). Everything else (a README, a report, another run) is the
    user's, so a run folder holding it is not overwritten.
    """
    out = Path(out)
    foreign = []
    for entry in sorted(out.iterdir()):
        name = entry.name
        if name in TABLES and entry.is_dir() and not entry.is_symlink():
            foreign += _foreign_in_table(entry)
        elif name == TMP_DIR and entry.is_dir() and not entry.is_symlink():
            continue
        elif name in RUN_FILES and entry.is_file() and not entry.is_symlink():
            continue
        elif entry.is_file() and _HIDDEN_TMP.fullmatch(name):
            continue
        else:
            foreign.append(entry)
    return foreign


def _foreign_in_table(folder: Path) -> list[Path]:
    foreign = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            foreign.append(entry)
        elif entry.is_dir():
            key, sep, value = entry.name.partition("=")
            if sep and _SAFE_VALUE.fullmatch(key) and _SAFE_VALUE.fullmatch(value):
                foreign += _foreign_in_table(entry)
            else:
                foreign.append(entry)
        elif not (entry.name == PART or _HIDDEN_TMP.fullmatch(entry.name)):
            foreign.append(entry)
    return foreign


def clear_run(out: Path) -> None:
    """Delete this program's entries of the run folder ``out``, except its lock: the table
    folders, ``_tmp`` and the run files (call it only when :func:`foreign_entries` is empty).

    The manifest goes last, so a clear cut short (Ctrl-C, a full disk) leaves a folder that is
    still recognisably a run, which ``--overwrite`` can clear again."""
    out = Path(out)
    for name in (*TABLES, TMP_DIR):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for tmp in _leftover_tmp_files(out, in_tables=False):  # the table folders are gone
        tmp.unlink()
    for name in (*[n for n in RUN_FILES if n not in (LOCK, MANIFEST)], MANIFEST):
        (out / name).unlink(missing_ok=True)


def missing_files(
    out: Path, chunk: int, tables: list[str], arms: list[str], prefix: str = ""
) -> list[Path]:
    """Files :func:`write_chunk` writes for ``chunk`` (every table x arm) that are not there."""
    paths = [Path(out) / t / prefix / f"arm={a}" / chunk_dirname(chunk) / PART
             for t in tables for a in arms]
    return [p for p in paths if not p.is_file()]


def remove_tmp(out: Path) -> None:
    """Delete ``out/_tmp`` if it is empty (a finished run leaves no trace of it)."""
    try:
        (Path(out) / TMP_DIR).rmdir()
    except OSError:
        pass


def dir_size(path: Path, exclude: tuple[str, ...] = ()) -> int:
    """Total bytes of the regular files under ``path``, leaving out the top-level ``exclude``."""
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*")
               if p.is_file() and p.relative_to(path).parts[0] not in exclude)


def is_empty_dir(path: Path, ignore: tuple[str, ...] = ()) -> bool:
    """True if ``path`` does not exist or is a folder holding nothing but ``ignore``."""
    path = Path(path)
    return not path.exists() or (
        path.is_dir() and all(p.name in ignore for p in path.iterdir())
    )
