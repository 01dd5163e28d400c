"""Numbers as the report prints them, in tables and prose (HTML entities for dashes)."""

from __future__ import annotations

from collections.abc import Sequence


def num(x, digits: int = 1) -> str:
    """A number with thousands separators; an integer as is, a float to ``digits``."""
    if x is None:
        return "&ndash;"
    if isinstance(x, float) and x != x:
        return "&ndash;"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.{digits}f}".replace("-", "&minus;")


def pct(x, digits: int = 0) -> str:
    """A share (0 to 1) as a percentage."""
    return "&ndash;" if x is None else f"{100 * x:.{digits}f}%"


def iqr(m, lo, hi, digits: int = 1) -> str:
    """A median with its interquartile range: ``m (lo–hi)``, or ``m (lo to hi)`` below zero."""
    if m is None:
        return "&ndash;"
    sep = " to " if lo is not None and lo < 0 else "&ndash;"
    return f"{num(m, digits)} ({num(lo, digits)}{sep}{num(hi, digits)})"


def iqr_of(row: dict, prefix: str = "", digits: int = 1) -> str:
    """:func:`iqr` of a row's ``<prefix>median``, ``<prefix>q25`` and ``<prefix>q75``."""
    return iqr(row[f"{prefix}median"], row[f"{prefix}q25"], row[f"{prefix}q75"], digits)


def count_share(n, share) -> str:
    """A count with its share (0 to 1) in brackets: ``12 (40%)``."""
    return f"{num(n)} ({pct(share)})"


def ci(m, lo, hi, digits: int = 1) -> str:
    """A median with its confidence interval; a bound beyond follow-up is "not reached"."""
    if m is None:
        return "not reached"

    def bound(x):
        return "n.r." if x is None else num(x, digits)

    return f"{num(m, digits)} ({bound(lo)} to {bound(hi)})"


def join(parts: Sequence[str]) -> str:
    """Parts joined as an English list: ``a``, ``a and b``, ``a, b and c``."""
    if len(parts) < 2:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
