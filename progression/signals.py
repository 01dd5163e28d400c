"""Signals during a run: SIGTERM ends it as Ctrl-C does, and worker processes start with SIGINT
ignored so that only the run's own process handles a terminal's Ctrl-C."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it ends the run as Ctrl-C does."""


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes start, so they inherit it ignored.

    A Ctrl-C on a terminal reaches the whole process group; the workers should not die with
    tracebacks of their own but be shut down by this process, which alone handles the Ctrl-C.
    """
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a batch system's time limit) ends the run as Ctrl-C
    does: tasks cancelled, cluster closed, manifest saved, folder released. Only in the main
    thread; elsewhere signals are left alone."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
