"""Recorded CMAP scans out of a run, one two-column CSV per scan, for outside MUNE programs.

Each scan in ``RUN/scans/`` (recorded when the scenario sets ``[exam.scans]``) becomes
``OUT/p<patient>_<arm>_m<month>_<muscle>_<side>.csv``: a header ``S,A`` and one row per stimulus
in the order delivered (supramaximal first): ``S`` the stimulus (mA), ``A`` the response
amplitude (mV), the two columns CMAP-scan MUNE programs read. Numbers are written in Python's
shortest round-trip form, so reading a file back gives the table's values exactly. Only the
files the manifest lists are read, each checked to have its recorded size; an incomplete run is
refused unless asked for (``allow_incomplete``), and then ``OUT/INCOMPLETE.txt`` says how much
of the run the files cover. Existing files are never overwritten unless asked, and then each file
is replaced atomically. This module reads and writes files only; it computes no
physiology.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from analysis.io import RunReadError, RunStatus, run_status, write_atomic

#: Columns of an exported scan: stimulus (mA) and amplitude (mV).
HEADER = "S,A"
#: Written beside the CSV files when they come from an incomplete run.
INCOMPLETE_NOTE = "INCOMPLETE.txt"


class ExportError(Exception):
    """The export cannot proceed; the message is one line, fit for the terminal."""


def scan_filename(patient_id: int, arm: str, month: float, muscle: str, side: str) -> str:
    """File name of one scan, e.g. ``p0000042_natural_history_m12_APB_left.csv``."""
    return f"p{int(patient_id):07d}_{arm}_m{float(month):g}_{muscle}_{side}.csv"


def _status(run: Path, allow_incomplete: bool) -> RunStatus:
    """The run's status, its listed files checked (size); an incomplete run only if allowed."""
    if not run.is_dir():
        raise ExportError(f"{run} is not a folder (expected the --out of progression run)")
    try:
        status = run_status(run)
    except RunReadError as e:
        raise ExportError(str(e)) from None
    if not status.complete and not allow_incomplete:
        raise ExportError(status.refusal())
    return status


def read_scans(
    run: str | Path, allow_incomplete: bool = False, status: RunStatus | None = None
) -> dict[str, np.ndarray]:
    """The scans of a run's complete chunks, sorted by (patient, arm, month, muscle, side) and
    within a scan in the order delivered; raises :class:`ExportError` if there are none, or if
    the run is incomplete and not ``allow_incomplete``. ``status``: the run's, if known."""
    run = Path(run)
    files = (status or _status(run, allow_incomplete)).files.get("scans", [])
    if not (run / "scans").is_dir():
        raise ExportError(
            f"{run} has no recorded scans; record them with [exam.scans] muscles = [...] in the "
            "scenario"
        )
    table = ds.dataset(files, format="parquet", partitioning=ds.HivePartitioning.discover(),
                       partition_base_dir=str(run / "scans")).to_table() if files else None
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


def export_scans(
    run: str | Path, out: str | Path, *, overwrite: bool = False, allow_incomplete: bool = False
) -> list[Path]:
    """Write every recorded scan of ``run`` as a CSV in ``out`` (created if needed).

    Args:
        run: the run folder (the ``--out`` of ``progression run``).
        out: folder for the CSV files.
        overwrite: replace files that exist already (otherwise an :class:`ExportError` names the
            first one, and nothing is written).
        allow_incomplete: export the complete chunks of an unfinished run (``OUT/INCOMPLETE.txt``
            then says how much of the run they cover).

    Returns:
        The files written, in scan order.
    """
    status = _status(Path(run), allow_incomplete)
    cols = read_scans(run, status=status)
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
        write_atomic(path, f"{HEADER}\n{rows}")
    note = out / INCOMPLETE_NOTE
    if not status.complete:
        write_atomic(note, f"These scans come from an {status.describe()} in "
                           f"{Path(run).resolve()}.\n")
    elif note.exists() and overwrite:
        note.unlink()
    return paths


__all__ = ["HEADER", "INCOMPLETE_NOTE", "ExportError", "export_scans", "read_scans",
           "scan_filename"]
