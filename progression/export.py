"""Recorded CMAP scans out of a run, one two-column CSV per scan, for outside MUNE programs.

Each scan in ``RUN/scans/`` (recorded when the scenario sets ``[exam.scans]``) becomes
``OUT/p<patient>_<arm>_m<month>_<muscle>_<side>.csv``: a header ``S,A`` and one row per stimulus
in the order delivered (supramaximal first): ``S`` the stimulus (mA), ``A`` the response
amplitude (mV), the two columns CMAP-scan MUNE programs read. Numbers are written in Python's
shortest round-trip form, so reading a file back gives the table's values exactly. Only chunks
the manifest lists as complete are read. Existing files are never overwritten unless asked, and
then each file is replaced atomically. This module reads and writes files only; it computes no
physiology.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from progression import storage

#: Columns of an exported scan: stimulus (mA) and amplitude (mV).
HEADER = "S,A"


class ExportError(Exception):
    """The export cannot proceed; the message is one line, fit for the terminal."""


def scan_filename(patient_id: int, arm: str, month: float, muscle: str, side: str) -> str:
    """File name of one scan, e.g. ``p0000042_natural_history_m12_APB_left.csv``."""
    return f"p{int(patient_id):07d}_{arm}_m{float(month):g}_{muscle}_{side}.csv"


def read_scans(run: str | Path) -> dict[str, np.ndarray]:
    """The scans of a run's complete chunks, sorted by (patient, arm, month, muscle, side) and
    within a scan in the order delivered; raises :class:`ExportError` if there are none."""
    run = Path(run)
    if not run.is_dir():
        raise ExportError(f"{run} is not a folder (expected the --out of progression run)")
    try:
        manifest = storage.Manifest.load(run)
    except FileNotFoundError:
        raise ExportError(f"{run} is not a progression run (no {storage.MANIFEST})") from None
    except ValueError as e:
        raise ExportError(str(e)) from None
    folder = run / "scans"
    if not folder.is_dir():
        raise ExportError(
            f"{run} has no recorded scans; record them with [exam.scans] muscles = [...] in the "
            "scenario"
        )
    complete = sorted(manifest.completed_chunks())
    dataset = ds.dataset(folder, format="parquet", partitioning="hive")
    table = dataset.to_table(filter=ds.field("chunk").isin(complete)) if complete else None
    if table is None or table.num_rows == 0:
        raise ExportError(f"{run} has no recorded scans in its complete chunks")
    cols = {
        name: table[name].cast("string").to_numpy(zero_copy_only=False).astype(object)
        if name in ("arm", "muscle", "side")
        else table[name].to_numpy()
        for name in ("patient_id", "arm", "month", "muscle", "side", "stimulus_ma", "amplitude_mv")
    }
    order = np.lexsort(
        (
            -cols["stimulus_ma"],
            cols["side"].astype(str),
            cols["muscle"].astype(str),
            cols["month"],
            cols["arm"].astype(str),
            cols["patient_id"],
        )
    )
    return {k: v[order] for k, v in cols.items()}


def export_scans(run: str | Path, out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write every recorded scan of ``run`` as a CSV in ``out`` (created if needed).

    Args:
        run: the run folder (the ``--out`` of ``progression run``).
        out: folder for the CSV files.
        overwrite: replace files that exist already (otherwise an :class:`ExportError` names the
            first one, and nothing is written).

    Returns:
        The files written, in scan order.
    """
    cols = read_scans(run)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    keys = list(zip(cols["patient_id"], cols["arm"], cols["month"], cols["muscle"], cols["side"],
                    strict=True))
    bounds = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]] + [len(keys)]
    paths = [out / scan_filename(*keys[a]) for a in bounds[:-1]]
    if not overwrite:
        for path in paths:
            if path.exists():
                raise ExportError(f"{path} exists; add --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    s, a = cols["stimulus_ma"], cols["amplitude_mv"]
    for path, lo, hi in zip(paths, bounds[:-1], bounds[1:], strict=True):
        rows = "".join(f"{float(x)!r},{float(y)!r}\n" for x, y in zip(s[lo:hi], a[lo:hi],
                                                                      strict=True))
        storage.write_text_atomic(path, f"{HEADER}\n{rows}")
    return paths


__all__ = ["HEADER", "ExportError", "export_scans", "read_scans", "scan_filename"]
