"""The scenario reference: every section and key of the schema, as Markdown.

The schema documents itself in one place, :mod:`progression.scenario`: each section is a frozen
dataclass whose docstring has a Google-style ``Attributes:`` entry per key (its meaning, then an
optional ``Source: ...`` sentence), and each numeric key's field metadata carries its ``unit``
beside its valid range. This module reads both, with the types, defaults, ranges and choices the
validator enforces, and writes the reference page of the documentation site (``docs/hooks.py``
calls :func:`markdown` at build time; ``python -m progression.reference`` prints it).
:func:`undocumented` lists every key without a meaning or a unit, so a test names any new key
whose documentation is missing.
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
import re
import sys
import types
import typing
from dataclasses import MISSING, Field, dataclass, fields, is_dataclass

from progression.distributions import Dist
from progression.scenario import Scenario

#: Placeholder names of tables whose keys the user chooses (``[cohort.arms.<arm>]``).
PLACEHOLDERS = {
    "cohort.arms": "<arm>",
    "phenotypes": "<PHENOTYPE>",
    "body.overrides": "<muscle>",
    "treatments": "<treatment>",
    "sweep.parameters": '"<key path>"',
}

#: Keys whose value has no unit (strings, booleans, lists of names): no ``unit`` metadata needed.
_UNITLESS = (str, bool)


@dataclass(frozen=True)
class Key:
    """One key of a section as the reference shows it."""

    name: str
    type: str
    unit: str | None  # None: not given; "": dimensionless
    default: str
    allowed: str
    distribution: bool
    meaning: str
    source: str


@dataclass(frozen=True)
class Section:
    """One TOML table of the schema (``path`` empty for the top level) and its keys."""

    path: str
    cls: type
    summary: str
    keys: tuple[Key, ...]


# ---------------------------------------------------------------------------------------------
# Docstrings


_HEADER = re.compile(r"^(\s*)Attributes\b[^:\n]*:\s*$")


def attribute_docs(cls: type) -> dict[str, str]:
    """Key -> its ``Attributes:`` entry, from ``cls`` and its bases (the nearest one wins).

    An entry may name several keys (``min_age_years, max_age_years: ...``); continuation lines
    are joined with single spaces.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(_entries(inspect.getdoc(klass) or "") if klass.__doc__ else {})
    return docs


def _entries(doc: str) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if not m:
            continue
        indent = len(m.group(1))
        names: list[str] = []
        for entry in lines[i + 1:]:
            if not entry.strip():
                continue
            depth = len(entry) - len(entry.lstrip())
            if depth <= indent:
                break  # the section ended
            head = re.match(r"\s*([A-Za-z_][\w, ]*):\s(.*)$", entry)
            if head and depth == indent + 4:
                names = [n.strip() for n in head.group(1).split(",")]
                for n in names:
                    out[n] = head.group(2).strip()
            elif names:
                for n in names:
                    out[n] += " " + entry.strip()
    return out


def summary(cls: type) -> str:
    """A section's description: its docstring up to ``Attributes``, paragraphs joined."""
    doc = inspect.getdoc(cls) if cls.__doc__ else ""
    text = re.split(r"^Attributes\b.*:\s*$", doc or "", flags=re.M)[0]
    return _md(" ".join(text.split()))


def _meaning_and_source(entry: str) -> tuple[str, str]:
    """An entry split at its ``Source:`` (or ``Sources:``) sentence, in Markdown."""
    parts = re.split(r"\s*\bSources?: ", entry, maxsplit=1)
    return _md(parts[0]), (_md(parts[1]) if len(parts) > 1 else "")


def _md(text: str) -> str:
    """reStructuredText literals and roles (````x````, ``:class:`~a.B```) as Markdown code."""
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: f"`{m.group(1)}`", text)
    return re.sub(r"``(.+?)``", r"`\1`", text).strip()


def _number(x: float) -> str:
    """A bound as written: ``600``, ``0.5``, ``10^9``, ``2^63 - 1``."""
    if float(x).is_integer() and abs(x) >= 10**6:
        x = int(x)
        if (x + 1) & x == 0:
            return f"2^{(x + 1).bit_length() - 1} - 1"
        if str(x).rstrip("0") == "1":
            return f"10^{len(str(x)) - 1}"
    return f"{x:g}"


# ---------------------------------------------------------------------------------------------
# Types, defaults and allowed values


def _strip_none(tp):
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else functools.reduce(operator.or_, args)), True
    return tp, False


def _is_section(tp) -> bool:
    """A nested table of settings: a dataclass, or a table of dataclasses."""
    tp, _ = _strip_none(tp)
    if tp is Dist:
        return False  # a value: a number or a distribution table
    if is_dataclass(tp):
        return True
    return typing.get_origin(tp) is dict and is_dataclass(typing.get_args(tp)[1])


def type_text(tp) -> str:
    """What a value must be, in words."""
    tp, _ = _strip_none(tp)
    origin = typing.get_origin(tp)
    if tp is Dist:
        return "number or distribution"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(a) for a in typing.get_args(tp))
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if typing.get_origin(item) is tuple:
            return "list of lists of numbers"
        return "list of numbers" if item is float else "list of strings"
    if origin is dict:
        return "table of numbers"
    names = {int: "integer", float: "number", str: "string", bool: "boolean"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def toml_value(value) -> str:
    """A default written as it would be in a scenario file."""
    if isinstance(value, Dist):
        if value.kind == "constant" and math.isinf(value.lo) and math.isinf(value.hi):
            return toml_value(value.p["value"])
        parts = [f'dist = "{value.kind}"', *(f"{k} = {toml_value(v)}" for k, v in value.params)]
        if value.lo > -math.inf:
            parts.append(f"min = {toml_value(value.lo)}")
        if value.hi < math.inf:
            parts.append(f"max = {toml_value(value.hi)}")
        return "{ " + ", ".join(parts) + " }"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


def default_text(f: Field) -> str:
    """The default, ``required`` without one, ``none`` for an optional key left out."""
    if f.default is MISSING and f.default_factory is MISSING:
        return "required"
    value = f.default if f.default is not MISSING else f.default_factory()
    if value is None:
        return "none"
    choices = f.metadata.get("choices")
    if isinstance(value, tuple) and choices and len(value) > 3 and tuple(value) == tuple(choices):
        return "all of the allowed"
    return toml_value(value)


def allowed_text(f: Field) -> str:
    """The range, choices, keys and conditions the validator checks for the key."""
    meta = f.metadata
    out = []
    if meta.get("lo") is not None or meta.get("hi") is not None:
        lo = "-inf" if meta.get("lo") is None else _number(meta["lo"])
        hi = "inf" if meta.get("hi") is None else _number(meta["hi"])
        out.append(f"{'(' if meta.get('open_lo') else '['}{lo}, {hi}]")
    if meta.get("choices"):
        out.append("among " + ", ".join(f"`{c}`" for c in meta["choices"]))
    if meta.get("keys"):
        out.append("keys among " + ", ".join(f"`{k}`" for k in meta["keys"]))
    if meta.get("nonempty"):
        out.append("non-empty")
    if meta.get("pattern_only"):
        out.append(f"only with `pattern = \"{meta['pattern_only']}\"`")
    return "; ".join(out)


def _needs_unit(tp) -> bool:
    tp, _ = _strip_none(tp)
    if typing.get_origin(tp) is tuple:
        return typing.get_args(tp)[0] is not str
    return tp not in _UNITLESS


# ---------------------------------------------------------------------------------------------
# The walk


def _public(cls) -> list[Field]:
    return [f for f in fields(cls) if not f.metadata.get("internal")]


def sections(cls: type = Scenario, path: str = "") -> list[Section]:
    """Every section of the schema, depth first in field order, each with its leaf keys."""
    hints = typing.get_type_hints(cls)
    docs = attribute_docs(cls)
    keys, below = [], []
    for f in _public(cls):
        tp = hints[f.name]
        sub = f"{path}.{f.name}" if path else f.name
        if _is_section(tp):
            inner, _ = _strip_none(tp)
            if typing.get_origin(inner) is dict:
                inner = typing.get_args(inner)[1]
                sub = f"{sub}.{PLACEHOLDERS.get(sub, '<name>')}"
            below.extend(sections(inner, sub))
            continue
        meaning, source = _meaning_and_source(docs.get(f.name, ""))
        keys.append(Key(
            name=f.name,
            type=type_text(tp),
            unit=f.metadata.get("unit"),
            default=default_text(f),
            allowed=allowed_text(f),
            distribution=_strip_none(tp)[0] is Dist,
            meaning=meaning,
            source=source,
        ))
    return [Section(path, cls, summary(cls), tuple(keys)), *below]


def undocumented(cls: type = Scenario) -> list[str]:
    """What the reference would lack, one line per problem naming the key path and the fix."""
    problems = []
    for s in sections(cls):
        where = f"[{s.path}]" if s.path else "the top level"
        if not s.summary:
            problems.append(f"{where}: {s.cls.__name__} has no docstring")
        hints = typing.get_type_hints(s.cls)
        for k in s.keys:
            key = f"{s.path}.{k.name}" if s.path else k.name
            if not k.meaning:
                problems.append(
                    f"{key}: no meaning; add '{k.name}: ...' to the Attributes: section of "
                    f"the docstring of {s.cls.__qualname__} (progression/scenario.py)"
                )
            if _needs_unit(hints[k.name]) and k.unit is None:
                problems.append(
                    f"{key}: no unit; add unit=... to its field metadata in {s.cls.__qualname__} "
                    '(e.g. _range(0, 1, unit="fraction"); unit="" if it has none)'
                )
    return problems


# ---------------------------------------------------------------------------------------------
# Markdown


def _cell(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{text}`" if text and text not in ("required", "none", "all of the allowed") else text


def markdown(cls: type = Scenario) -> str:
    """The reference: one heading and table per section, then the distribution kinds."""
    out = []
    for s in sections(cls):
        if not s.keys and s.cls is not cls:
            title = f"`[{s.path}]`"
            out += [f"### {title}", "", s.summary, ""]
            continue
        title = f"`[{s.path}]`" if s.path else "Top level"
        out += [f"### {title}", "", s.summary, ""]
        out += [
            "| key | type | unit | default | allowed | per patient | meaning | source |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for k in s.keys:
            row = (
                f"`{k.name}`", k.type, k.unit or "", _code(k.default), k.allowed,
                "distribution" if k.distribution else "", k.meaning, k.source,
            )
            out.append("| " + " | ".join(_cell(c) for c in row) + " |")
        out.append("")
    out += ["### Distributions", ""]
    out.append(
        "A key whose *per patient* column says *distribution* takes a number (the same for "
        "every patient) or an inline table naming a kind and its parameters, optionally "
        "clipped by `min` and `max`; the whole support must lie in the key's allowed range."
    )
    out += ["", "| `dist` | parameters |", "|---|---|"]
    for kind, params in Dist.KINDS.items():
        out.append(f"| `{kind}` | {', '.join(f'`{p}`' for p in params)} |")
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    sys.stdout.write(markdown())
    problems = undocumented()
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
