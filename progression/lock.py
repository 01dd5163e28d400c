"""Who owns a run folder: one writer at a time, named in ``DIR/progression.lock``.

A run (or sweep) takes the folder before it changes anything in it and gives it back when it
ends, however it ends (complete, Ctrl-C, SIGTERM, an error). The lock file is created with
``O_CREAT | O_EXCL``, so of two processes that start at once only one gets it; the other is told
who owns the folder. It holds the owner's host, pid, the process's start time (so a recycled pid
is not mistaken for the owner), the command and a random token.

A lock left by a process that no longer exists (killed with SIGKILL, a crashed machine) is
*stale*. On the owner's own host that is decided from the process table and the lock is taken
over; a lock of another host cannot be checked from here, so the message says how to remove it
by hand once that run is known to be gone.

Workers do not take the lock: they write chunk files on the owner's behalf and check, before
they touch the folder, that the lock still carries their run's token (:func:`holds`), so the
workers of a run that lost its folder (its client killed, a new run started) stop writing into it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOCK = "progression.lock"


class FolderInUse(Exception):
    """Another live process owns the run folder; the message names it (one line)."""


def _process_started(pid: int) -> float | None:
    """Start time of process ``pid`` (seconds since the epoch), or None if there is none."""
    import psutil  # comes with distributed

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def owner(out: Path) -> dict[str, Any] | None:
    """The lock's record ``{host, pid, started, process_started, command, token}``, or None
    if the folder has no lock. An unreadable lock file reads as ``{}`` (an owner unknown)."""
    try:
        text = (Path(out) / LOCK).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}


def is_stale(record: dict[str, Any]) -> bool:
    """True if the lock's owner is a process of this host that no longer runs.

    A lock of another host, or one whose record cannot be read, is never called stale.
    """
    if record.get("host") != socket.gethostname():
        return False
    pid, started = record.get("pid"), record.get("process_started")
    if not isinstance(pid, int) or not isinstance(started, int | float):
        return False
    now_started = _process_started(pid)
    return now_started is None or abs(now_started - started) > 1.0


def describe(record: dict[str, Any]) -> str:
    """The owner in words: ``pid 123 on host h (progression run ..., since 2026-...)``."""
    if not record:
        return "an unknown process (the lock file is unreadable)"
    what = f"pid {record.get('pid')} on host {record.get('host')}"
    extra = ", ".join(str(x) for x in (record.get("command"), record.get("started")) if x)
    return f"{what} ({extra})" if extra else what


def acquire(out: Path) -> str:
    """Take the folder ``out`` (created if absent) for this process; return the run's token.

    A stale lock of this host (its process is gone) is taken over.

    Raises:
        FolderInUse: a live process, or one that cannot be checked, owns the folder.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    me = os.getpid()
    token = uuid.uuid4().hex
    record = {
        "host": socket.gethostname(),
        "pid": me,
        "process_started": _process_started(me),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["progression", *sys.argv[1:]])[:300],
        "token": token,
    }
    for _ in range(3):
        try:
            fd = os.open(out / LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = owner(out)
            if held is None:
                continue  # released meanwhile: try again
            if not is_stale(held):
                raise FolderInUse(_in_use(out, held)) from None
            _remove_stale(out, held)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        return token
    raise FolderInUse(_in_use(out, owner(out) or {}))


def _remove_stale(out: Path, held: dict[str, Any]) -> None:
    """Remove the stale lock ``held``, unless another process replaced it meanwhile."""
    aside = out / f".{LOCK}.{uuid.uuid4().hex[:12]}.stale"
    try:
        os.replace(out / LOCK, aside)
    except FileNotFoundError:
        return
    try:
        moved = json.loads(aside.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        moved = {}
    if moved != held:  # a live owner's fresh lock was moved: put it back
        try:
            os.link(aside, out / LOCK)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


def _in_use(out: Path, held: dict[str, Any]) -> str:
    here = held.get("host") == socket.gethostname()
    hint = (
        "wait for it to finish or stop it" if here else
        f"wait for it to finish; if that process is gone, delete {out / LOCK}"
    )
    return f"{out} is in use by {describe(held)}: {hint}"


def holds(out: Path, token: str) -> bool:
    """Whether the lock of ``out`` still carries ``token`` (the run that took it owns it)."""
    record = owner(out)
    return bool(record) and record.get("token") == token


def release(out: Path, token: str) -> None:
    """Give the folder back (only if this run still owns it)."""
    if holds(out, token):
        (Path(out) / LOCK).unlink(missing_ok=True)
