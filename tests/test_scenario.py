"""Scenario files: validation errors, command-line behaviour, overrides, the hash, distributions.

Every error is one line that starts with the file, names the key path and says what was expected;
typos are errors with a did-you-mean; malformed TOML reports its line. Hypothesis mutates the
shipped scenarios (a required key deleted, an unknown key inserted, a value of the wrong type or
out of range, broken TOML syntax) and checks each of those promises.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
import subprocess
import sys
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from progression.scenario import (
    OVERRIDES_HEADER,
    Dist,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from progression.studies import cli
from tests.conftest import ROOT, SCENARIOS

SHIPPED = sorted(SCENARIOS.glob("*.toml"))
ALS = SCENARIOS / "als_natural_history.toml"
SMA = SCENARIOS / "sma_segmental.toml"
MUTATIONS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ---------------------------------------------------------------------------------------------
# Helpers: a small TOML writer, and the checks every error must pass

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(k: str) -> str:
    return k if _BARE.fullmatch(k) else _toml_string(k)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def dump_toml(data: dict) -> str:
    """TOML text for a dict (every nested dict as a [table] section)."""
    lines: list[str] = []

    def table(d: dict, prefix: tuple[str, ...]) -> None:
        if prefix:
            lines.append("[" + ".".join(_toml_key(k) for k in prefix) + "]")
        for k, v in d.items():
            if not isinstance(v, dict):
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in d.items():
            if isinstance(v, dict):
                table(v, (*prefix, k))

    table(data, ())
    return "\n".join(lines) + "\n"


def key_path(*keys: str) -> str:
    """A key path as error messages write it (non-bare keys quoted as in TOML)."""
    return ".".join(k if _BARE.fullmatch(k) else json.dumps(k, ensure_ascii=False) for k in keys)


def raw(path: Path = ALS) -> dict:
    return tomllib.loads(path.read_text())


def error_of(path: Path, **kw) -> str:
    """The message of the ScenarioError that loading ``path`` raises, checked to be one line
    starting with the file."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, **kw)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{path}: "), message
    return message


def names_key(message: str, path: Path, key: str) -> bool:
    """The error is about ``key`` (or a key inside it)."""
    return re.match(re.escape(f"{path}: {key}") + r"[.:]", message) is not None


def write(tmp: Path, name: str, data: dict | str) -> Path:
    path = tmp / name
    path.write_text(data if isinstance(data, str) else dump_toml(data), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# The shipped scenarios


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenarios_validate(path: Path, capsys):
    s = load_scenario(path)
    assert isinstance(s, Scenario) and s.path == str(path) and len(s.hash) == 64
    assert path.read_text().lstrip().startswith("#"), "each scenario opens with its physiology"
    assert cli.main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ok")


def test_shipped_scenarios_encode_their_phenotypes():
    expected = {"als_natural_history", "pma_natural_history", "pls_natural_history"}
    assert expected | {"mnd_population", "sma_segmental"} <= {p.stem for p in SHIPPED}
    pma = load_scenario(SCENARIOS / "pma_natural_history.toml")
    assert pma.disease.umn is None and [p.processes for p in pma.phenotypes.values()] == [("lmn",)]
    als = load_scenario(ALS)
    pma_speed = pma.disease.lmn.speed.center * pma.phenotypes["PMA"].speed_factor
    assert pma_speed < als.disease.lmn.speed.center, "PMA is the slower LMN disease"
    pls = load_scenario(SCENARIOS / "pls_natural_history.toml")
    assert pls.disease.lmn is None and [p.processes for p in pls.phenotypes.values()] == [("umn",)]
    assert pls.disease.umn.speed.center < als.disease.umn.speed.center
    assert 480 <= pls.time.duration_months <= 1200
    assert pls.cohort.patients < als.cohort.patients
    mnd = load_scenario(SCENARIOS / "mnd_population.toml")
    shares = {k: p.share for k, p in mnd.phenotypes.items()}
    assert shares == {"ALS": 0.90, "PMA": 0.06, "PLS": 0.04}
    assert {k: p.processes for k, p in mnd.phenotypes.items()} == {
        "ALS": ("lmn", "umn"),
        "PMA": ("lmn",),
        "PLS": ("umn",),
    }
    sma = load_scenario(SMA)
    assert sma.disease.lmn.pattern == "segmental" and sma.disease.umn is None


# ---------------------------------------------------------------------------------------------
# Errors, one by one


def _set(d: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[last] = value
    return d


def _del(d: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d[p]
    del d[last]


CASES = [
    # (id, base file, mutation of the raw dict, key named, fragment of the message)
    ("required", ALS, lambda d: _del(d, "cohort.patients"), "cohort.patients", "it is required"),
    ("required-table", ALS, lambda d: _del(d, "reinnervation"), "reinnervation", "required"),
    (
        "wrong-type",
        ALS,
        lambda d: _set(d, "cohort.patients", "many"),
        "cohort.patients",
        "expected an integer, got 'many'",
    ),
    (
        "bool-is-not-a-number",
        ALS,
        lambda d: _set(d, "cohort.patients", True),
        "cohort.patients",
        "expected an integer, got True",
    ),
    (
        "float-for-int",
        ALS,
        lambda d: _set(d, "visits.interval_months", 2.5),
        "visits.interval_months",
        "expected an integer",
    ),
    (
        "out-of-range",
        ALS,
        lambda d: _set(d, "disease.lmn.spread_delay_months", -1),
        "disease.lmn.spread_delay_months",
        "expected a value in [0, 1200], got -1.0",
    ),
    (
        "open-lower-bound",
        ALS,
        lambda d: _set(d, "reinnervation.time_constant_months", 0),
        "reinnervation.time_constant_months",
        "expected a value in (0, inf]",
    ),
    (
        "open-lower-bound-dist",
        ALS,
        lambda d: _set(d, "reinnervation.time_constant_months", {"dist": "constant", "value": 0}),
        "reinnervation.time_constant_months",
        "within (0, inf]",
    ),
    (
        "nan",
        ALS,
        lambda d: _set(d, "reinnervation.capacity", math.nan),
        "reinnervation.capacity",
        "expected a finite number, got nan",
    ),
    (
        "inf",
        ALS,
        lambda d: _set(d, "disease.lmn.speed", math.inf),
        "disease.lmn.speed",
        "finite number",
    ),
    (
        "unbounded-dist",
        ALS,
        lambda d: _set(
            d, "disease.lmn.spread_delay_months", {"dist": "normal", "mean": 6, "sd": 2}
        ),
        "disease.lmn.spread_delay_months",
        "add min/max to bound it",
    ),
    (
        "unbounded-dist-no-upper-range",
        ALS,
        lambda d: _set(d, "disease.lmn.speed", {"dist": "normal", "mean": 0.05, "sd": 0.01}),
        "disease.lmn.speed",
        "within [0, inf]",
    ),
    (
        "dist-kind",
        ALS,
        lambda d: _set(d, "disease.lmn.speed.dist", "lognormol"),
        "disease.lmn.speed.dist",
        "expected one of 'constant', 'normal', 'lognormal', 'uniform'",
    ),
    (
        "dist-kind-type",
        ALS,
        lambda d: _set(d, "disease.lmn.speed.dist", [1]),
        "disease.lmn.speed.dist",
        "got [1]",
    ),
    (
        "dist-missing-kind",
        ALS,
        lambda d: _del(d, "disease.lmn.speed.dist"),
        "disease.lmn.speed.dist",
        "required",
    ),
    (
        "dist-kind-typo",
        ALS,
        lambda d: _set(d, "disease.lmn.speed", {"dits": "lognormal", "median": 1, "sigma": 1}),
        "disease.lmn.speed.dits",
        "did you mean 'dist'?",
    ),
    (
        "dist-param-typo",
        ALS,
        lambda d: _set(d, "disease.lmn.speed.sigam", 0.5),
        "disease.lmn.speed.sigam",
        "did you mean 'sigma'?",
    ),
    (
        "dist-param-missing",
        ALS,
        lambda d: _del(d, "disease.lmn.speed.sigma"),
        "disease.lmn.speed.sigma",
        "required for dist = 'lognormal'",
    ),
    (
        "dist-negative-sd",
        ALS,
        lambda d: _set(d, "cohort.age_years.sd", -1),
        "cohort.age_years.sd",
        ">= 0",
    ),
    (
        "dist-max-below-min",
        ALS,
        lambda d: _set(d, "cohort.age_years.max", 10),
        "cohort.age_years.max",
        "expected a value >= min (25)",
    ),
    (
        "unknown-key",
        ALS,
        lambda d: _set(d, "disease.lmn.spread_dealy_months", 6),
        "disease.lmn.spread_dealy_months",
        "unknown key (did you mean 'spread_delay_months'?)",
    ),
    (
        "unknown-section",
        ALS,
        lambda d: d.update(reinervation=d.pop("reinnervation")),
        "reinervation",
        "did you mean 'reinnervation'?",
    ),
    ("unknown-top-level", ALS, lambda d: d.update(nmae="x"), "nmae", "did you mean 'name'?"),
    (
        "unknown-region",
        ALS,
        lambda d: _set(d, "cohort.onset_region.cervicl", 0.1),
        "cohort.onset_region.cervicl",
        "did you mean 'cervical'?",
    ),
    (
        "unknown-muscle",
        ALS,
        lambda d: _set(d, "body.overrides.bicep.units", 100),
        "body.overrides.bicep",
        "did you mean 'biceps'?",
    ),
    (
        "muscle-choice",
        ALS,
        lambda d: _set(d, "body.muscles", ["APB", "deltoid"]),
        "body.muscles",
        "got 'deltoid'",
    ),
    (
        "pattern-only-key",
        ALS,
        lambda d: _set(d, "disease.lmn.segments", ["C5"]),
        "disease.lmn.segments",
        "only with pattern = 'segmental'",
    ),
    (
        "pattern-choice",
        ALS,
        lambda d: _set(d, "disease.lmn.pattern", "diffuse"),
        "disease.lmn.pattern",
        "expected one of 'focal', 'segmental', 'length_dependent'",
    ),
    (
        "unknown-segment",
        SMA,
        lambda d: _set(d, "disease.lmn.segments", ["L2", "Q9"]),
        "disease.lmn.segments",
        "got 'Q9'",
    ),
    (
        "segmental-needs-segments",
        SMA,
        lambda d: _set(d, "disease.lmn.segments", []),
        "disease.lmn.segments",
        "non-empty",
    ),
    (
        "phenotype-shares",
        ALS,
        lambda d: _set(d, "phenotypes.ALS.share", 0.9),
        "phenotypes",
        "shares summing to 1, got 0.9",
    ),
    (
        "region-shares",
        ALS,
        lambda d: _set(d, "cohort.onset_region.bulbar", 0.5),
        "cohort.onset_region",
        "shares summing to 1",
    ),
    (
        "undefined-process",
        SCENARIOS / "pma_natural_history.toml",
        lambda d: _set(d, "phenotypes.PMA.processes", ["lmn", "umn"]),
        "phenotypes.PMA.processes",
        "a process defined in [disease.umn]",
    ),
    (
        "process-choice",
        ALS,
        lambda d: _set(d, "phenotypes.ALS.processes", ["xmn"]),
        "phenotypes.ALS.processes",
        "items among lmn, umn",
    ),
    (
        "process-repeat",
        ALS,
        lambda d: _set(d, "phenotypes.ALS.processes", ["lmn", "lmn"]),
        "phenotypes.ALS.processes",
        "without repeats",
    ),
    ("no-phenotypes", ALS, lambda d: _set(d, "phenotypes", {}), "phenotypes", "at least one"),
    (
        "undefined-treatment",
        ALS,
        lambda d: _set(d, "cohort.arms.treated.treatment", "drug"),
        "cohort.arms.treated.treatment",
        "expected one of none, got 'drug'",
    ),
    (
        "treatment-start",
        ALS,
        lambda d: (
            _set(d, "treatments.drug.start", -3),
            _set(d, "cohort.arms.t.treatment", "drug"),
        ),
        "treatments.drug.start",
        "'first_visit' or 'enrolment' or a month >= 0",
    ),
    ("no-arms", ALS, lambda d: _set(d, "cohort.arms", {}), "cohort.arms", "at least one arm"),
    (
        "arm-folder-name",
        ALS,
        lambda d: _set(d, "cohort.arms", {"a/b": {}}),
        'cohort.arms."a/b"',
        "names an output folder",
    ),
    (
        "step-divides-month",
        ALS,
        lambda d: _set(d, "time.step_months", 0.3),
        "time.step_months",
        "divides a month",
    ),
    (
        "step-vs-interval",
        ALS,
        lambda d: (_set(d, "time.step_months", 2), _set(d, "visits.interval_months", 1)),
        "time.step_months",
        "no longer than visits.interval_months",
    ),
    (
        "step-vs-duration",
        ALS,
        lambda d: (_set(d, "time.step_months", 2), _set(d, "time.duration_months", 1)),
        "time.step_months",
        "no longer than time.duration_months",
    ),
    (
        "duration-range",
        ALS,
        lambda d: _set(d, "time.duration_months", 1201),
        "time.duration_months",
        "(0, 1200]",
    ),
    (
        "section-type",
        ALS,
        lambda d: d.update(cohort=5),
        "cohort",
        "expected a table of Cohort settings, got 5",
    ),
    ("string-type", ALS, lambda d: d.update(name=5), "name", "expected a string, got 5"),
    (
        "date-value",
        ALS,
        lambda d: _set(d, "cohort.seed", datetime.date(2026, 1, 1)),
        "cohort.seed",
        "expected an integer, got datetime.date(2026, 1, 1)",
    ),
    (
        "huge-integer",
        ALS,
        lambda d: _set(d, "cohort.patients", 10**400),
        "cohort.patients",
        "expected a value in [1, 1e+09], got 1000",
    ),
    (
        "huge-integer-for-float",
        ALS,
        lambda d: _set(d, "disease.lmn.speed", 10**400),
        "disease.lmn.speed",
        "finite number",
    ),
    ("newline-in-key", ALS, lambda d: _set(d, "cohort.x\ny", 1), 'cohort."x\\ny"', "unknown key"),
]


@pytest.mark.parametrize(
    ("base", "mutate", "key", "fragment"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_error_names_file_key_and_expectation(tmp_path, base, mutate, key, fragment):
    data = raw(base)
    mutate(data)
    path = write(tmp_path, "bad.toml", data)
    message = error_of(path)
    assert names_key(message, path, key), message
    assert fragment in message, message
    assert "expected" in message, message


def test_long_values_are_cut_short_in_messages(tmp_path):
    data = raw()
    data["name"] = list(range(1000))
    path = write(tmp_path, "bad.toml", data)
    message = error_of(path)
    assert names_key(message, path, "name") and message.endswith("...") and len(message) < 300


def _line(needle: str) -> int:
    """Line of the ALS file holding ``needle`` (the file's comments may grow)."""
    lines = ALS.read_text().split("\n")
    return next(i + 1 for i, line in enumerate(lines) if needle in line)


def _after_end() -> int:
    """The line just after the ALS file's last line."""
    return ALS.read_text().count("\n") + 1


TOML_CASES = [
    # (id, text transformation of the ALS file, line reported, fragment)
    (
        "double-equals",
        lambda t: t.replace("seed = 20261125", "seed = = 20261125"),
        _line("seed = 20261125"),
        "Invalid",
    ),
    (
        "duplicate-key",
        lambda t: t.replace("seed = 20261125", "seed = 1\nseed = 2"),
        _line("seed = 20261125") + 1,
        "overwrite",
    ),
    (
        "unclosed-inline-table",
        lambda t: t.replace("max = 90 }", "max = 90"),
        _line("max = 90 }"),
        "inline table",
    ),
    (
        "unterminated-string-at-end",
        lambda t: t + 'extra = "abc',
        _after_end(),
        "Unterminated string",
    ),
    ("header", lambda t: t.replace("[time]", "[time"), _line("[time]"), "]"),
    ("duplicate-table", lambda t: t + "[time]\n", _after_end(), "twice"),
]


@pytest.mark.parametrize(
    ("transform", "line", "fragment"),
    [c[1:] for c in TOML_CASES],
    ids=[c[0] for c in TOML_CASES],
)
def test_malformed_toml_reports_its_line(tmp_path, transform, line, fragment):
    text = transform(ALS.read_text())
    path = write(tmp_path, "bad.toml", text)
    message = error_of(path)
    assert message.startswith(f"{path}: line {line}: malformed TOML: "), message
    assert fragment in message, message


def test_unreadable_and_undecodable_files(tmp_path):
    assert "cannot read" in error_of(tmp_path / "missing.toml")
    assert "cannot read" in error_of(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(ALS.read_bytes().replace(b'name = "ALS', b'name = "\xe9', 1))
    name_line = _line('name = "ALS')
    assert error_of(bad).startswith(f"{bad}: line {name_line}: expected UTF-8 text")
    huge = write(tmp_path, "huge.toml", ALS.read_text() + "x = " + "9" * 5000 + "\n")
    assert error_of(huge).startswith(f"{huge}: line {_after_end()}: malformed TOML")
    deep = write(tmp_path, "deep.toml", ALS.read_text() + "x = " + "[" * 3000 + "]" * 3000)
    assert error_of(deep).startswith(f"{deep}: line {_after_end()}: malformed TOML")


def test_byte_order_mark_and_windows_line_ends_are_fine(tmp_path):
    text = ALS.read_text()
    path = tmp_path / "windows.toml"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert load_scenario(path).hash == load_scenario(ALS).hash


def test_parse_scenario_names_its_source():
    with pytest.raises(ScenarioError, match=r"^<string>: name: expected a string"):
        parse_scenario(ALS.read_text().replace('name = "ALS natural history"', "name = 1"))
    with pytest.raises(ScenarioError, match=r"^inline: line 1: malformed TOML"):
        parse_scenario("name = ", "inline")


# ---------------------------------------------------------------------------------------------
# Hypothesis: many malformed files made from the shipped ones


@dataclass(frozen=True)
class Node:
    """A key of a scenario file with what the schema says about it."""

    path: tuple[str, ...]
    kind: str  # int, float, dist, param, text, choice, list, start, table
    required: bool
    meta: dict
    allowed: tuple[str, ...] = ()  # keys of a table that accepts no others
    extra: str = ""  # dist param name


def _unwrap(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def schema_nodes(cls, table: dict, path: tuple[str, ...] = ()) -> list[Node]:
    """Every key present in ``table`` (a raw TOML table for dataclass ``cls``), recursively."""
    hints = typing.get_type_hints(cls)
    public = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    nodes = [Node(path, "table", False, {}, allowed=tuple(public))]
    for key, value in table.items():
        f = public[key]
        tp, p = _unwrap(hints[key]), (*path, key)
        required = f.default is MISSING and f.default_factory is MISSING
        meta = dict(f.metadata)
        origin = typing.get_origin(tp)
        if tp is Dist:
            nodes.append(Node(p, "dist", required, meta))
            if isinstance(value, dict):
                names = Dist.KINDS[value["dist"]]
                nodes.append(Node(p, "table", False, meta, allowed=("dist", *names, "min", "max")))
                nodes.append(Node((*p, "dist"), "choice", True, {}))
                for name in (*names, "min", "max"):
                    if name in value:
                        nodes.append(Node((*p, name), "param", name in names, meta, extra=name))
        elif dataclasses.is_dataclass(tp):
            nodes.append(Node(p, "section", required, meta))
            nodes += schema_nodes(tp, value, p)
        elif origin is dict:
            nodes.append(Node(p, "section", required, meta))
            vtype = typing.get_args(tp)[1]
            if dataclasses.is_dataclass(vtype):
                for k, v in value.items():
                    nodes += schema_nodes(vtype, v, (*p, k))
            else:
                nodes.append(Node(p, "table", False, meta, allowed=tuple(meta["keys"])))
                nodes += [Node((*p, k), "float", False, meta) for k in value]
        elif origin is tuple:
            nodes.append(Node(p, "list", required, meta))
        elif tp is str:
            nodes.append(Node(p, "choice" if "choices" in meta else "text", required, meta))
        elif tp in (int, float):
            nodes.append(Node(p, tp.__name__, required, meta))
        else:  # str | float (Treatment.start)
            nodes.append(Node(p, "start", required, meta))
    return nodes


def _get(d: dict, path: tuple[str, ...]):
    for k in path:
        d = d[k]
    return d


def _put(d: dict, path: tuple[str, ...], value) -> None:
    _get(d, path[:-1])[path[-1]] = value


NODES = {p: schema_nodes(Scenario, raw(p)) for p in SHIPPED}
WRONG = {
    "int": [True, "oops", [1], datetime.date(2020, 1, 1), 2.5],
    "float": [True, "oops", [1], datetime.date(2020, 1, 1)],
    "dist": [True, "oops", [1], datetime.date(2020, 1, 1)],
    "param": [True, "oops", [1], datetime.date(2020, 1, 1)],
    "text": [1, True, [1], datetime.date(2020, 1, 1)],
    "choice": [1, True, ["x"], datetime.date(2020, 1, 1), "oops"],
    "list": [1, True, "lmn", datetime.date(2020, 1, 1), [1, 2]],
    "start": [True, [1], datetime.date(2020, 1, 1), "oops"],
    "section": [1, "oops", [1]],
}


def _out_of_range(node: Node, data: dict, draw) -> tuple[object, tuple[str, ...]] | None:
    """A value outside the node's range, and the key the error must name."""
    if node.kind == "param":
        table = _get(data, node.path[:-1])
        below_zero = draw(st.floats(-1e6, -1e-6))
        if node.extra in ("sd", "sigma"):
            return below_zero, node.path
        if node.extra == "median":
            return draw(st.sampled_from([0.0, below_zero])), node.path
        if node.extra == "high":
            return table["low"] - draw(st.floats(1e-3, 1e6)), node.path
        if node.extra == "max" and "min" in table:
            return table["min"] - draw(st.floats(1e-3, 1e6)), node.path
        if node.extra == "value":
            lo = node.meta.get("lo")
            return (lo - draw(st.floats(1e-3, 1e6)), node.path[:-1]) if lo is not None else None
        return None
    if node.kind not in ("int", "float", "dist"):
        return None
    lo, hi = node.meta.get("lo"), node.meta.get("hi")
    options = []
    if node.kind == "int":
        if lo is not None:
            options.append(lo - draw(st.integers(1, 10**6)))
        if hi is not None:
            options.append(hi + draw(st.integers(1, 10**6)))
    else:
        if lo is not None:
            options.append(lo - draw(st.floats(1e-6, 1e9)))
            if node.meta.get("open_lo"):
                options.append(float(lo))
        if hi is not None:
            options.append(hi + draw(st.floats(1e-6, 1e9)))
        options += [math.nan, math.inf, -math.inf]
    if not options:
        return None
    return draw(st.sampled_from(options)), node.path


@pytest.fixture(scope="module")
def mutants(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mutants")


@MUTATIONS
@given(base=st.sampled_from(SHIPPED), data=st.data())
def test_deleting_a_required_key_is_named(mutants, base, data):
    raw_dict = raw(base)
    node = data.draw(st.sampled_from([n for n in NODES[base] if n.required and n.path]))
    del _get(raw_dict, node.path[:-1])[node.path[-1]]
    path = write(mutants, "deleted.toml", raw_dict)
    message = error_of(path)
    assert names_key(message, path, key_path(*node.path)), message
    assert "required" in message, message


_KEY_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))


@MUTATIONS
@given(
    base=st.sampled_from(SHIPPED),
    data=st.data(),
    key=st.one_of(st.from_regex(r"[a-z_]{1,20}", fullmatch=True), st.text(_KEY_CHARS, max_size=8)),
)
def test_an_unknown_key_is_named(mutants, base, data, key):
    raw_dict = raw(base)
    node = data.draw(st.sampled_from([n for n in NODES[base] if n.kind == "table"]))
    assume(key not in node.allowed)
    table = _get(raw_dict, node.path)
    table[key] = data.draw(st.sampled_from([1, "x", [1.5], {"a": 1}]))
    path = write(mutants, "unknown.toml", raw_dict)
    message = error_of(path)
    assert message.startswith(f"{path}: {key_path(*node.path, key)}: unknown key"), message
    assert "expected one of" in message


def _typo(key: str, draw) -> str:
    """One slip of the keyboard: a letter dropped, doubled, swapped or replaced."""
    i = draw(st.integers(0, len(key) - 2))
    how = draw(st.sampled_from(["drop", "double", "swap", "replace"]))
    if how == "drop":
        return key[:i] + key[i + 1 :]
    if how == "double":
        return key[: i + 1] + key[i:]
    if how == "swap":
        return key[:i] + key[i + 1] + key[i] + key[i + 2 :]
    return key[:i] + draw(st.sampled_from("aeioustxz")) + key[i + 1 :]


@MUTATIONS
@given(base=st.sampled_from(SHIPPED), data=st.data())
def test_a_typo_gets_a_did_you_mean(mutants, base, data):
    raw_dict = raw(base)
    tables = [n for n in NODES[base] if n.kind == "table" and any(len(k) >= 5 for k in n.allowed)]
    node = data.draw(st.sampled_from(tables))
    key = data.draw(st.sampled_from([k for k in node.allowed if len(k) >= 5]))
    typo = _typo(key, data.draw)
    assume(typo not in node.allowed)
    table = _get(raw_dict, node.path)
    table[typo] = table.pop(key) if key in table else 1
    path = write(mutants, "typo.toml", raw_dict)
    message = error_of(path)
    assert message.startswith(
        f"{path}: {key_path(*node.path, typo)}: unknown key (did you mean {key!r}?)"
    ), message


@MUTATIONS
@given(base=st.sampled_from(SHIPPED), data=st.data())
def test_a_value_of_the_wrong_type_is_named(mutants, base, data):
    raw_dict = raw(base)
    node = data.draw(st.sampled_from([n for n in NODES[base] if n.kind in WRONG and n.path]))
    value = data.draw(st.sampled_from(WRONG[node.kind]))
    _put(raw_dict, node.path, value)
    path = write(mutants, "wrong_type.toml", raw_dict)
    message = error_of(path)
    assert names_key(message, path, key_path(*node.path)), message
    assert "expected" in message


@MUTATIONS
@given(base=st.sampled_from(SHIPPED), data=st.data())
def test_a_value_out_of_range_is_named(mutants, base, data):
    raw_dict = raw(base)
    candidates = [n for n in NODES[base] if n.kind in ("int", "float", "dist", "param")]
    node = data.draw(st.sampled_from(candidates))
    change = _out_of_range(node, raw_dict, data.draw)
    assume(change is not None)
    value, named = change
    _put(raw_dict, node.path, value)
    path = write(mutants, "out_of_range.toml", raw_dict)
    message = error_of(path)
    assert names_key(message, path, key_path(*named)), message
    assert "expected" in message


def _syntax_breaks(line: str) -> list[tuple[str, int]]:
    """Ways to break one line of TOML: (replacement text, offset of the reported line)."""
    if line.startswith("["):
        return [(line.rstrip("]"), 0), (f"{line}\n{line}", 1), (f"{line} junk", 0)]
    key, _, value = line.partition(" = ")
    breaks = [
        (f"{key} {value}", 0),  # no "="
        (f"{key} = = {value}", 0),
        (f"{line} junk", 0),
        (f'{key} = "{value}', 0),  # an unterminated string
        (f"{line}\n{line}", 1),  # the same key twice
    ]
    if value.endswith("}"):
        breaks.append((line[:-1], 0))  # an unclosed inline table
    return breaks


@MUTATIONS
@given(base=st.sampled_from(SHIPPED), data=st.data())
def test_broken_toml_syntax_reports_its_line(mutants, base, data):
    lines = base.read_text().split("\n")
    candidates = [  # lines that start a key or a table (not the rows of a multi-line array)
        i for i, s in enumerate(lines) if s.strip() and not s.startswith(("#", " ", "]"))
    ]
    i = data.draw(st.sampled_from(candidates))
    replacement, offset = data.draw(st.sampled_from(_syntax_breaks(lines[i])))
    lines[i] = replacement
    path = write(mutants, "syntax.toml", "\n".join(lines))
    message = error_of(path)
    assert message.startswith(f"{path}: line {i + 1 + offset}: malformed TOML: "), message


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_validate_exits_2_with_one_line_and_no_traceback(tmp_path, capsys):
    data = raw()
    data["disease"]["lmn"]["spread_delay_months"] = "soon"
    bad = write(tmp_path, "bad.toml", data)
    assert cli.main(["validate", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.splitlines() == [
        f"progression: error: {bad}: disease.lmn.spread_delay_months: expected a number or a "
        "table like { dist = \"lognormal\", ... }, got 'soon'"
    ]


@pytest.mark.parametrize(
    "content",
    ["name = ", "[cohort]\npatients = 1\n[cohort]\n", b"\xff\xfe"],
    ids=["syntax", "duplicate-table", "not-utf8"],
)
def test_cli_validate_malformed_files(tmp_path, capsys, content):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert cli.main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and re.match(
        rf"progression: error: {re.escape(str(bad))}: "
        r"line \d+: ",
        err,
    ), err


def test_cli_validate_several_files_reports_the_bad_one(tmp_path, capsys):
    missing = tmp_path / "missing.toml"
    assert cli.main(["validate", str(ALS), str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"{ALS}: ok") and err.startswith(f"progression: error: {missing}: ")


def test_cli_run_validates_before_anything_is_written(tmp_path, capsys):
    bad = write(tmp_path, "bad.toml", raw() | {"time": 3})
    out = tmp_path / "out"
    assert cli.main(["run", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"progression: error: {bad}: time: expected a table of Time settings, got 3"
    ]
    assert not out.exists()


def test_python_m_progression_validate_bad_file(tmp_path):
    data = raw()
    data["cohort"]["patiens"] = 10
    bad = write(tmp_path, "bad.toml", data)
    proc = subprocess.run(
        [sys.executable, "-m", "progression", "validate", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"progression: error: {bad}: cohort.patiens: unknown key (did you mean 'patients'?); "
        "expected one of patients, seed, age_years, onset_region, arms, correlations"
    ]


# ---------------------------------------------------------------------------------------------
# Overrides and the hash


def test_patients_and_seed_overrides_apply_and_change_the_hash():
    base = load_scenario(ALS)
    s = load_scenario(ALS, patients=7, seed=3)
    assert (s.cohort.patients, s.cohort.seed) == (7, 3)
    assert s.hash != base.hash
    assert load_scenario(ALS, patients=7).hash not in (base.hash, s.hash)
    assert load_scenario(ALS, seed=3).hash not in (base.hash, s.hash)
    # The text as run lists the overrides and reproduces the scenario on its own.
    assert s.text.startswith(OVERRIDES_HEADER)
    assert "cohort.patients = 7" in s.text and "cohort.seed = 3" in s.text
    assert parse_scenario(s.text, "run/scenario.toml").hash == s.hash
    assert "# ALS natural history" in s.text  # the file's comments are kept
    # Overriding with the value already in the file is the same scenario.
    same = load_scenario(ALS, patients=base.cohort.patients, seed=base.cohort.seed)
    assert same.hash == base.hash


def test_key_path_overrides_apply_and_change_the_hash():
    base = load_scenario(ALS)
    s = load_scenario(
        ALS,
        overrides={
            "disease.lmn.speed.median": 0.1,
            "reinnervation.atrophy_window_months": 6,
            "phenotypes.ALS.processes": ("lmn",),  # a tuple is a list
            "cohort.arms.placebo.treatment": "none",  # a new table (replaces the default arm)
            "excitability.margin_mv": np.float32(8.0),  # numpy scalars are numbers
            "visits.interval_months": np.int64(6),
        },
    )
    assert s.disease.lmn.speed.p["median"] == pytest.approx(0.1)
    assert s.disease.lmn.speed.p["sigma"] == base.disease.lmn.speed.p["sigma"]
    assert s.reinnervation.atrophy_window_months == 6
    assert s.phenotypes["ALS"].processes == ("lmn",)
    assert s.arm_names == ("placebo",)
    assert s.excitability.margin_mv == 8.0 and s.visits.interval_months == 6
    assert s.hash != base.hash
    assert parse_scenario(s.text).hash == s.hash
    one = load_scenario(ALS, overrides={"disease.lmn.speed.median": 0.1})
    assert one.hash not in (base.hash, s.hash)


def test_override_of_a_number_by_a_distribution_bound():
    text = re.sub(
        r"referral_delay_months = \{[^}]*\}", "referral_delay_months = 7", ALS.read_text()
    )
    s = parse_scenario(text, "f.toml", {"visits.referral_delay_months.max": 5})
    d = s.visits.referral_delay_months
    assert d.kind == "constant" and d.support() == (5.0, 5.0)
    assert parse_scenario(s.text).hash == s.hash


def test_override_none_removes_a_key():
    s = load_scenario(
        SMA, overrides={"disease.lmn.pattern": "length_dependent", "disease.lmn.segments": None}
    )
    assert s.disease.lmn.pattern == "length_dependent" and s.disease.lmn.segments == ()
    assert "disease.lmn.segments = (removed)" in s.text
    assert parse_scenario(s.text).hash == s.hash
    message = error_of(SMA, overrides={"disease.lmn.pattern": "length_dependent"})
    assert names_key(message, SMA, "disease.lmn.segments") and "only with pattern" in message
    message = error_of(ALS, overrides={"cohort.seed": None})
    assert names_key(message, ALS, "cohort.seed") and "required" in message


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        ({"disease.lmn.sped": 0.1}, "disease.lmn.sped", "did you mean 'speed'?"),
        ({"cohort.patients": 0}, "cohort.patients", "[1, 1e+09], got 0"),
        ({"cohort.patients": "10"}, "cohort.patients", "expected an integer, got '10'"),
        ({"phenotypes.ALS.processes.lmn": 1}, "phenotypes.ALS.processes.lmn", "through tables"),
        ({"disease..speed": 1}, "disease..speed", "an override key path"),
        ({"disease.lmn.speed": 10**5000}, "disease.lmn.speed", "finite number"),
    ],
)
def test_bad_overrides_are_named(overrides, key, fragment):
    message = error_of(ALS, overrides=overrides)
    assert names_key(message, ALS, key), message
    assert fragment in message, message


def test_overrides_leave_the_callers_values_alone():
    table = {"dist": "lognormal", "median": 0.05, "sigma": 0.5}
    load_scenario(ALS, overrides={"disease.lmn.speed": table, "disease.lmn.speed.median": 0.2})
    assert table == {"dist": "lognormal", "median": 0.05, "sigma": 0.5}


def _strip_comments(text: str) -> str:
    return "\n".join(s for s in text.split("\n") if s.strip() and not s.lstrip().startswith("#"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_hash_ignores_comments_and_formatting(path):
    h = load_scenario(path).hash
    assert parse_scenario(_strip_comments(path.read_text()), "other.toml").hash == h
    # Every table as a [section], keys re-quoted: the same content.
    assert parse_scenario(dump_toml(raw(path))).hash == h


def test_hash_covers_the_validated_content():
    h = load_scenario(ALS).hash
    text = ALS.read_text()
    # An integer where a float is expected, and a default spelled out, change nothing.
    same = text.replace("duration_months = 120", "duration_months = 120.0")
    same += "\n[mortality]\ngompertz_a_per_year = 0.008\n"
    assert parse_scenario(same).hash == h
    # A different value, a different description, or a different order of the shares (which
    # the per-patient draws follow) is a different scenario.
    assert parse_scenario(text.replace("sigma = 0.85", "sigma = 0.86")).hash != h
    assert parse_scenario(text.replace("Sporadic ALS", "ALS")).hash != h
    reordered = text.replace(
        "onset_region = { bulbar = 0.22, cervical = 0.36, thoracic = 0.06, lumbosacral = 0.36 }",
        "onset_region = { cervical = 0.36, bulbar = 0.22, thoracic = 0.06, lumbosacral = 0.36 }",
    )
    assert reordered != text and parse_scenario(reordered).hash != h


def test_scenario_is_frozen():
    s = load_scenario(ALS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.cohort.patients = 3  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Distributions across patients


def _dist(value, key: str = "cohort.age_years") -> Dist:
    """A Dist as the scenario schema parses it at ``key`` (``cohort.age_years``: [0, 120])."""
    obj = parse_scenario(ALS.read_text(), "f.toml", {key: value})
    for k in key.split("."):
        obj = getattr(obj, k)
    return obj


IDS = np.arange(4000)


def test_constant_distribution():
    d = _dist(50)
    assert d == Dist.constant(50.0) and d.support() == (50.0, 50.0) and d.center == 50
    assert (d.sample(1, "x", IDS)[:, 0] == 50).all()
    clipped = _dist({"dist": "constant", "value": 5, "min": 10})
    assert clipped.support() == (10.0, 10.0) and (clipped.sample(1, "x", IDS) == 10).all()


def test_normal_distribution_with_min_and_max():
    d = _dist({"dist": "normal", "mean": 60, "sd": 20, "min": 30, "max": 80})
    assert d.support() == (30.0, 80.0)
    x = d.sample(7, "cohort.age_years", IDS)[:, 0]
    assert x.min() >= 30 and x.max() <= 80
    assert (x == 30).any() and (x == 80).any()  # clipped, not redrawn
    inner = x[(x > 30) & (x < 80)]
    assert abs(np.median(inner) - 60) < 2
    free = Dist("normal", (("mean", 60.0), ("sd", 5.0))).sample(7, "y", IDS)[:, 0]
    assert abs(free.mean() - 60) < 0.5 and abs(free.std() - 5) < 0.3


def test_lognormal_distribution():
    d = _dist({"dist": "lognormal", "median": 40, "sigma": 0.5}, "disease.lmn.speed")
    assert d.support() == (0.0, math.inf) and d.center == 40
    x = d.sample(7, "z", IDS)[:, 0]
    assert (x > 0).all()
    assert abs(np.median(x) / 40 - 1) < 0.05 and abs(np.log(x).std() - 0.5) < 0.03
    capped = _dist({"dist": "lognormal", "median": 40, "sigma": 1, "max": 90, "min": 1})
    y = capped.sample(7, "z", IDS)[:, 0]
    assert y.max() == 90 and y.min() >= 1


def test_uniform_distribution():
    d = _dist({"dist": "uniform", "low": 20, "high": 70})
    assert d.support() == (20.0, 70.0) and d.center == 45
    x = d.sample(7, "u", IDS)[:, 0]
    assert x.min() >= 20 and x.max() <= 70
    counts, _ = np.histogram(x, bins=5, range=(20, 70))
    assert counts.min() > 0.8 * len(IDS) / 5


@settings(max_examples=50, deadline=None)
@given(
    kind=st.sampled_from(["constant", "normal", "lognormal", "uniform"]),
    a=st.floats(0.5, 100),
    b=st.floats(0, 50),
    lo=st.one_of(st.none(), st.floats(0, 60)),
    width=st.one_of(st.none(), st.floats(0, 60)),
    seed=st.integers(0, 2**63 - 1),
)
def test_samples_stay_within_the_support(kind, a, b, lo, width, seed):
    params = {
        "constant": {"value": a},
        "normal": {"mean": a, "sd": b},
        "lognormal": {"median": a, "sigma": b / 25},
        "uniform": {"low": a, "high": a + b},
    }[kind]
    table = {"dist": kind, **params}
    if lo is not None:
        table["min"] = lo
    if width is not None:
        table["max"] = (lo or 0) + width
    table["min"] = max(table.get("min", 0), 0)  # age_years is within [0, 120]
    table["max"] = min(table.get("max", 120), 120)
    assume(table["max"] >= table["min"])
    d = _dist(table)
    s_lo, s_hi = d.support()
    x = d.sample(seed, "cohort.age_years", np.arange(300))
    assert s_lo <= s_hi
    assert (x >= s_lo).all() and (x <= s_hi).all()


@settings(max_examples=40, deadline=None)
@given(
    ids=st.lists(st.integers(0, 2**40), min_size=1, max_size=30, unique=True),
    seed=st.integers(0, 2**63 - 1),
    n=st.integers(1, 3),
)
def test_sampling_is_keyed_by_patient_id(ids, seed, n):
    d = _dist({"dist": "normal", "mean": 60, "sd": 10, "min": 0, "max": 120})
    together = d.sample(seed, "cohort.age_years", np.array(ids), n)
    assert together.shape == (len(ids), n)
    for row, pid in enumerate(ids):
        alone = d.sample(seed, "cohort.age_years", np.array([pid]), n)
        np.testing.assert_array_equal(together[row], alone[0])
    shuffled = d.sample(seed, "cohort.age_years", np.array(ids[::-1]), n)
    np.testing.assert_array_equal(shuffled[::-1], together)


def test_sampling_depends_on_seed_and_key_path():
    d = _dist({"dist": "uniform", "low": 0, "high": 1})
    a = d.sample(1, "disease.lmn.speed", IDS[:100])
    assert not np.array_equal(a, d.sample(2, "disease.lmn.speed", IDS[:100]))
    assert not np.array_equal(a, d.sample(1, "disease.umn.speed", IDS[:100]))
    np.testing.assert_array_equal(a, d.sample(1, "disease.lmn.speed", IDS[:100]))


def test_scenario_distributions_sample_by_patient_id():
    """Through the engine's latent draws: a patient's values do not depend on its chunk."""
    from progression.state import draw_latent

    s = load_scenario(SCENARIOS / "mnd_population.toml", patients=50)
    whole = draw_latent(s, np.arange(50))
    part = draw_latent(s, np.array([42, 3, 17]))
    for field in ("age_years", "lmn_speed", "umn_speed", "capacity", "referral_delay"):
        np.testing.assert_array_equal(getattr(whole, field)[[42, 3, 17]], getattr(part, field))
    np.testing.assert_array_equal(whole.phenotype[[42, 3, 17]], part.phenotype)


def test_scenario_error_is_one_line_and_pickles():
    import pickle

    e = ScenarioError("f.toml: a\nb\r\x85\u2028c: expected x")
    assert len(str(e).splitlines()) == 1 and str(e) == "f.toml: a\\nb\\r\\x85\\u2028c: expected x"
    assert str(pickle.loads(pickle.dumps(e))) == str(e)


@settings(max_examples=30, deadline=None)
@given(
    patients=st.integers(1, 10**6),
    seed=st.integers(0, 2**32 - 1),
    median=st.floats(0.001, 1.0),
    window=st.integers(1, 24),
)
def test_the_text_as_run_reproduces_the_scenario(patients, seed, median, window):
    """``Scenario.text`` (written as RUN/scenario.toml) parses to the same scenario and hash."""
    s = load_scenario(ALS, patients=patients, seed=seed, overrides={
        "disease.lmn.speed.median": median, "reinnervation.atrophy_window_months": window})
    again = parse_scenario(s.text, "run/scenario.toml")
    assert again.hash == s.hash
    assert (again.cohort.patients, again.cohort.seed) == (patients, seed)
