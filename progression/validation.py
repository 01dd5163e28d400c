"""A generic validator: TOML read into frozen dataclasses, every error one line.

:func:`build` walks a TOML table against a dataclass: its fields are the allowed keys (an unknown
key, a typo, is an error with a suggestion), their type hints say what a value must be (numbers,
strings, lists, tables of further dataclasses, a :class:`~progression.distributions.Dist`), and
their metadata what else holds:

* ``lo``, ``hi``, ``open_lo``: a numeric range (:func:`field_range`), checked for numbers, the
  values of a table of numbers and the whole support of a distribution;
* ``choices``: the allowed strings (of a string, or of a list's items); ``nonempty``: a list
  must not be empty;
* ``keys``: the allowed keys of a table;
* ``pattern_only``: the key is allowed only beside ``pattern = <that value>``;
* ``internal``: not a key of the file (set by the program, left out of :func:`canonical`);
* ``hash_if_set``: left out of :func:`canonical` while it is None.

Every error is a :class:`ScenarioError` naming the file, the key path and what was expected, on
one line (:func:`invalid`). Also here: reading TOML text with such errors (:func:`parse_toml`),
key-path overrides (:func:`set_path`) and the canonical, JSON-ready form of a validated
dataclass that a hash is taken of (:func:`canonical`). The schema itself lives in
:mod:`progression.scenario`; this module imports only :mod:`progression.distributions`.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
import tomllib
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

import numpy as np

from progression.distributions import Dist

# ---------------------------------------------------------------------------------------------
# Errors: one line naming the file, the key path and what was expected


class ScenarioError(ValueError):
    """A scenario file is wrong; the message is one line naming file, key and expectation.

    Control characters (a newline inside a quoted TOML key, say) are escaped so that the
    message always stays on one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


def _one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped."""
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029\x85]", lambda m: repr(m.group())[1:-1], text)


def invalid(source: str, path: str, expected: str, got: Any = MISSING) -> ScenarioError:
    """The error at key ``path`` of ``source``: what was ``expected`` (and what it ``got``)."""
    tail = "" if got is MISSING else f", got {show(got)}"
    return ScenarioError(f"{source}: {path or '<top level>'}: expected {expected}{tail}")


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"<an integer of {value.bit_length()} bits>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(path: str, key: str) -> str:
    """``path.key``, with ``key`` quoted as in TOML unless it is a bare key."""
    key = str(key)
    if not _BARE_KEY.fullmatch(key):
        key = json.dumps(key, ensure_ascii=False)
    return f"{path}.{key}" if path else key


# ---------------------------------------------------------------------------------------------
# TOML text and key-path overrides


#: Where tomllib (Python 3.11-3.13) puts the position: "... (at line 3, column 5)".
_TOML_WHERE = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


def parse_toml(text: str, source: str) -> dict:
    """``tomllib.loads`` with every failure turned into a one-line error naming the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = getattr(e, "msg", None) or str(e)
        line, col = getattr(e, "lineno", None), getattr(e, "colno", None)
        m = _TOML_WHERE.search(msg)
        if m:
            msg = msg[: m.start()]
            if m.group(1):
                line, col = int(m.group(1)), int(m.group(2))
        if line is None:  # at the end of the document
            line, col = max(1, len(text.rstrip("\n").split("\n"))), None
        where = f"column {col}" if col else "end of file"
        raise ScenarioError(f"{source}: line {line}: malformed TOML: {msg} ({where})") from None
    except ValueError as e:  # an integer literal longer than Python converts
        m = re.search(r"\d[\d_]{1000,}", text)
        line = text.count("\n", 0, m.start()) + 1 if m else 1
        raise ScenarioError(
            f"{source}: line {line}: malformed TOML: a number too long to read ({e})"
        ) from None
    except RecursionError:
        lines = text.split("\n")
        deepest = max(range(len(lines)), key=lambda i: lines[i].count("[") + lines[i].count("{"))
        raise ScenarioError(
            f"{source}: line {deepest + 1}: malformed TOML: arrays or tables nested too deeply"
        ) from None


def set_path(raw: dict, key: str, value: Any, source: str) -> None:
    """Apply one override ``key = value`` (``None`` removes the key)."""
    if not isinstance(key, str) or not all(key.split(".")):
        raise invalid(source, str(key) or "<empty>", "an override key path like disease.lmn.speed")
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            if value is None:
                return  # nothing to remove
            node[part] = {}
            nxt = node[part]  # read back: a TOML document stores its own table type
        elif not isinstance(nxt, dict):
            # A number given where a distribution table is overridden: make it a table.
            number = isinstance(nxt, int | float) and not isinstance(nxt, bool)
            if number and i == len(parts) - 2:
                node[part] = {"dist": "constant", "value": plain(nxt)}
                nxt = node[part]
            else:
                where = ".".join(parts[: i + 1])
                raise invalid(source, key, f"a key path through tables ({where} is not one)", nxt)
        node = nxt
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = copy.deepcopy(plain(value))


def plain(value: Any) -> Any:
    """An override value as TOML would give it: numpy scalars to Python, tuples to lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# A TOML table walked against a dataclass


def field_range(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False, **kw):
    """Field metadata for a numeric range (inclusive unless ``open_lo``)."""
    return {"lo": lo, "hi": hi, "open_lo": open_lo, **kw}


def _interval(meta: dict) -> str:
    """A field's range as text, e.g. ``(0, inf]``."""
    lo, hi = meta.get("lo"), meta.get("hi")
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{'(' if meta.get('open_lo') else '['}{lo_s}, {hi_s}]"


def build(cls, table: Any, path: str, source: str):
    """Build dataclass ``cls`` from a TOML table, checking every key."""
    if not isinstance(table, dict):
        raise invalid(source, path, f"a table of {cls.__name__} settings", table)
    hints = typing.get_type_hints(cls)
    public = [f for f in fields(cls) if not f.metadata.get("internal")]
    _check_unknown(table, [f.name for f in public], path, source)
    pattern = table.get("pattern", "focal")
    values = {}
    for f in public:
        key = key_path(path, f.name)
        only = f.metadata.get("pattern_only")
        if f.name in table and only and pattern != only:
            raise invalid(source, key, f"this key only with pattern = {only!r}", table[f.name])
        if f.name not in table:
            if f.default is MISSING and f.default_factory is MISSING:
                what = _describe(hints[f.name], f)
                raise invalid(source, key, f"a value ({what}); it is required")
            continue
        values[f.name] = _convert(hints[f.name], table[f.name], key, f, source)
    return cls(**values)


def _check_unknown(table: dict, allowed: typing.Iterable[str], path: str, source: str) -> None:
    allowed = list(allowed)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ScenarioError(
                f"{source}: {key_path(path, key)}: unknown key{hint}; "
                f"expected one of {', '.join(allowed)}"
            )


def _describe(tp, f) -> str:
    origin = typing.get_origin(tp)
    if tp is Dist:
        return "a number or a distribution table"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, f) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple and typing.get_origin(typing.get_args(tp)[0]) is tuple:
        return "a list of lists of numbers"
    if origin is tuple and typing.get_args(tp)[0] is float:
        return "a list of numbers"
    if origin is tuple:
        choices = f.metadata.get("choices")
        return f"a list of {', '.join(choices)}" if choices else "a list of strings"
    if origin is dict:
        return "a table"
    if is_dataclass(tp):
        return "a table"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def _convert(tp, value: Any, key: str, f, source: str):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if args == [str, float]:  # a choice or a month (Treatment.start)
            if isinstance(value, str):
                return _convert(str, value, key, f, source)
            choices = " or ".join(map(repr, f.metadata.get("choices", ())))
            what = f"{choices} or a month >= 0"
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid(source, key, what, value)
            x = _number(value, key, source)
            if x < 0:
                raise invalid(source, key, what, value)
            return float(x)
        return _convert(args[0], value, key, f, source)
    if tp is Dist:
        return _dist(value, key, f, source)
    if is_dataclass(tp):
        return build(tp, value, key, source)
    if origin is dict:
        if not isinstance(value, dict):
            raise invalid(source, key, "a table", value)
        if "keys" in f.metadata:
            _check_unknown(value, f.metadata["keys"], key, source)
        vtype = typing.get_args(tp)[1]
        out = {}
        for k, v in value.items():
            sub = key_path(key, k)
            if is_dataclass(vtype):
                out[k] = build(vtype, v, sub, source)
            else:
                x = float(_number(v, sub, source))
                _check_range(x, sub, f, source)
                out[k] = x
        return out
    if origin is tuple and typing.get_origin(typing.get_args(tp)[0]) is tuple:  # a matrix
        if not isinstance(value, list) or not all(isinstance(r, list) for r in value):
            raise invalid(source, key, "a list of lists of numbers", value)
        rows = []
        for i, row in enumerate(value):
            sub = f"{key}[{i}]"
            numbers = tuple(float(_number(v, sub, source)) for v in row)
            for x in numbers:
                _check_range(x, sub, f, source)
            rows.append(numbers)
        return tuple(rows)
    if origin is tuple and typing.get_args(tp)[0] is float:  # a list of numbers
        if not isinstance(value, list):
            raise invalid(source, key, "a list of numbers", value)
        return tuple(float(_number(v, key, source)) for v in value)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(source, key, "a list of strings", value)
        choices = f.metadata.get("choices")
        for v in value:
            if choices and v not in choices:
                raise invalid(source, key, f"items among {', '.join(choices)}", v)
        if f.metadata.get("nonempty") and not value:
            raise invalid(source, key, "a non-empty list", value)
        if len(set(value)) != len(value):
            raise invalid(source, key, "a list without repeats", value)
        return tuple(value)
    if tp is str:
        choices = f.metadata.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            what = f"one of {', '.join(map(repr, choices))}" if choices else "a string"
            raise invalid(source, key, what, value)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise invalid(source, key, "true or false", value)
        return value
    if tp in (int, float):
        x = _number(value, key, source, integer=tp is int)
        _check_range(x, key, f, source)
        return tp(x)
    raise TypeError(f"unsupported field type {tp} at {key}")  # a programming error


def _check_range(x: float, key: str, f, source: str, got: Any = MISSING) -> None:
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    open_lo = f.metadata.get("open_lo", False)
    got = x if got is MISSING else got
    if (lo is not None and (x < lo or (open_lo and x == lo))) or (hi is not None and x > hi):
        raise invalid(source, key, f"a value in {_interval(f.metadata)}", got)


def _number(value: Any, key: str, source: str, integer: bool = False) -> float:
    """``value`` if it is a finite number (an integer if ``integer``), else an error."""
    what = "an integer" if integer else "a finite number"
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise invalid(source, key, what, value)
    if integer:
        return value  # any size: the field's range check reports one too large
    try:
        finite = math.isfinite(float(value))
    except OverflowError:  # an integer beyond the range of a float
        finite = False
    if not finite:
        raise invalid(source, key, what, value)
    return value


def _dist(value: Any, key: str, f, source: str) -> Dist:
    if isinstance(value, int | float) and not isinstance(value, bool):
        x = float(_number(value, key, source))
        _check_range(x, key, f, source)
        return Dist.constant(x)
    if not isinstance(value, dict):
        raise invalid(source, key, 'a number or a table like { dist = "lognormal", ... }', value)
    kinds = ", ".join(map(repr, Dist.KINDS))
    if "dist" not in value:
        every = dict.fromkeys(n for names in Dist.KINDS.values() for n in names)
        _check_unknown(value, ("dist", *every, "min", "max"), key, source)
        raise invalid(source, key_path(key, "dist"), f"one of {kinds}; it is required in a table")
    kind = value["dist"]
    if not isinstance(kind, str) or kind not in Dist.KINDS:
        raise invalid(source, key_path(key, "dist"), f"one of {kinds}", kind)
    names = Dist.KINDS[kind]
    _check_unknown(value, ("dist", *names, "min", "max"), key, source)
    params = []
    for name in names:
        if name not in value:
            raise invalid(source, key_path(key, name), f"a number (required for dist = {kind!r})")
        params.append((name, float(_number(value[name], key_path(key, name), source))))
    p = dict(params)
    if kind == "normal" and p["sd"] < 0:
        raise invalid(source, key_path(key, "sd"), "a value >= 0", p["sd"])
    if kind == "lognormal" and (p["median"] <= 0 or p["sigma"] < 0):
        bad = "median" if p["median"] <= 0 else "sigma"
        raise invalid(source, key_path(key, bad), "median > 0 and sigma >= 0", p[bad])
    if kind == "uniform" and p["high"] < p["low"]:
        raise invalid(source, key_path(key, "high"), f"a value >= low ({p['low']:g})", p["high"])
    lo, hi = -math.inf, math.inf
    if "min" in value:
        lo = float(_number(value["min"], key_path(key, "min"), source))
    if "max" in value:
        hi = float(_number(value["max"], key_path(key, "max"), source))
    if hi < lo:
        raise invalid(source, key_path(key, "max"), f"a value >= min ({lo:g})", hi)
    dist = Dist(kind, tuple(params), lo, hi)
    s_lo, s_hi = dist.support()
    meta = f.metadata
    r_lo, r_hi = meta.get("lo"), meta.get("hi")
    # A lognormal never reaches its lower end (0) unless clipped there from above 0.
    attained = not (kind == "lognormal" and lo <= 0 < hi)
    at_open_end = meta.get("open_lo") and s_lo == r_lo and attained
    below = r_lo is not None and (s_lo < r_lo or at_open_end)
    if below or (r_hi is not None and s_hi > r_hi):
        raise invalid(
            source,
            key,
            f"a distribution within {_interval(meta)} (add min/max to bound it); "
            f"this one spans [{s_lo:g}, {s_hi:g}]",
        )
    return dist


# ---------------------------------------------------------------------------------------------
# The canonical form (for a hash)


def canonical(obj: Any) -> Any:
    """A JSON-ready form of a validated section, for the hash (order preserved)."""
    if isinstance(obj, Dist):
        out: dict[str, Any] = {"dist": obj.kind, **obj.p}
        if obj.lo > -math.inf:
            out["min"] = obj.lo
        if obj.hi < math.inf:
            out["max"] = obj.hi
        return out
    if is_dataclass(obj):
        return {
            f.name: canonical(getattr(obj, f.name))
            for f in fields(obj)
            if not f.metadata.get("internal")
            # a section hashed only when present, so adding it left older hashes unchanged
            and not (f.metadata.get("hash_if_set") and getattr(obj, f.name) is None)
        }
    if isinstance(obj, dict):
        return [[k, canonical(v)] for k, v in obj.items()]
    if isinstance(obj, tuple | list):
        return [canonical(v) for v in obj]
    return obj
