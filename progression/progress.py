"""What a long job shows on a terminal: a one-line progress bar, durations and sizes."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressBar:
    """One-line progress bar on ``stream`` (``unit`` done, rate, ETA), redrawn with ``\\r``."""

    def __init__(self, total: int, done: int, stream: TextIO, enabled: bool,
                 unit: str = "patients") -> None:
        self.total, self.done, self.stream, self.enabled = total, done, stream, enabled
        self.unit = unit
        self.start_done, self.start = done, time.monotonic()
        self.last_draw = 0.0
        self.draw(force=True)

    def update(self, n: int) -> None:
        self.done += n
        self.draw()

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last_draw < 0.1):
            return
        self.last_draw = now
        elapsed = now - self.start
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        eta = format_duration((self.total - self.done) / rate) if rate > 0 else "--:--:--"
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(
            f"\r[{bar}] {self.done:,}/{self.total:,} {self.unit} | {rate:,.1f}/s | ETA {eta} "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


def format_duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError
