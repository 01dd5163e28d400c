"""The scenario reference (docs/scenarios/reference.md) is generated from the schema: every key
of every section has its meaning, unit, type, default and allowed values there."""

from __future__ import annotations

import re
import tomllib
from dataclasses import MISSING, dataclass, field, fields

import pytest

from progression import reference
from progression.distributions import Dist
from progression.scenario import Eligibility, Scenario, load_scenario
from progression.validation import canonical
from tests.conftest import ROOT, SCENARIOS


def test_every_key_of_the_schema_is_documented():
    problems = reference.undocumented()
    assert not problems, "\n".join(problems)


@dataclass(frozen=True)
class _Inner:
    """A section.

    Attributes:
        a: documented (counts).
    """

    a: float = field(default=1.0, metadata={"unit": "counts"})
    b: float = 2.0
    c: str = "x"


@dataclass(frozen=True)
class _Outer:
    """The top."""

    inner: _Inner = field(default_factory=_Inner)


def test_a_key_without_its_documentation_is_named():
    problems = reference.undocumented(_Outer)
    assert any(p.startswith("inner.b: no meaning") and "_Inner" in p for p in problems)
    assert any(p.startswith("inner.b: no unit") for p in problems)
    assert any(p.startswith("inner.c: no meaning") for p in problems)
    assert not any(p.startswith("inner.c: no unit") for p in problems)  # a string has none
    assert not any(p.startswith("inner.a") for p in problems)


def test_entries_naming_several_keys_and_continuation_lines():
    docs = reference.attribute_docs(Eligibility)
    assert docs["min_age_years"] == docs["max_age_years"] == "age at screening (years)."
    assert docs["diagnoses"].endswith("e.g. ``[\"ALS\"]``.")


def _leaf_paths(value, path=""):
    """Key paths of a validated scenario's canonical form, user-chosen names as placeholders."""
    if isinstance(value, dict) and "dist" in value:
        yield path
    elif value == [] and path in reference.PLACEHOLDERS:
        return  # an empty table of sections ([treatments] without any)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaf_paths(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list) and value and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in value
    ):  # a table with user-chosen keys, as canonical() writes it
        holder = reference.PLACEHOLDERS.get(path)
        for _, v in value:
            if holder is None:  # a table of numbers (onset_region): the key itself is a leaf
                yield path
                break
            yield from _leaf_paths(v, f"{path}.{holder}")
    else:
        yield path


@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIOS.glob("*.toml")))
def test_the_reference_documents_every_key_a_shipped_scenario_sets(name):
    """Walked from the validated shipped scenarios, not from the generator's own walk."""
    page = reference.markdown()
    blocks = dict(re.findall(r"### `\[(.+?)\]`\n(.*?)(?=\n### |\Z)", page, re.S))
    blocks[""] = page.split("### `[", 1)[0]
    for path in set(_leaf_paths(canonical(load_scenario(SCENARIOS / f"{name}.toml")))):
        if path in blocks:
            continue  # an optional section left out (trial = None): its own heading
        section, _, key = path.rpartition(".")
        assert section in blocks, f"no section [{section}] in the reference ({path})"
        assert re.search(rf"^\| `{re.escape(key)}` \|", blocks[section], re.M), path


def _sections_with_defaults():
    for s in reference.sections():
        for f in fields(s.cls):
            if f.metadata.get("internal") or f.name not in {k.name for k in s.keys}:
                continue
            if f.default is MISSING and f.default_factory is MISSING:
                continue
            yield s, f


def test_defaults_are_shown_as_toml_that_reads_back_to_the_default():
    checked = 0
    for s, f in _sections_with_defaults():
        shown = reference.default_text(f)
        value = f.default if f.default is not MISSING else f.default_factory()
        if shown in ("none", "all of the allowed"):
            assert value is None or tuple(value) == tuple(f.metadata["choices"])
            continue
        parsed = tomllib.loads(f"x = {shown}")["x"]
        expected = canonical(value)
        if isinstance(value, Dist) and value.kind == "constant" and isinstance(parsed, int | float):
            expected = expected["value"]
        assert parsed == expected, (s.path, f.name, shown)
        checked += 1
    assert checked > 60


def test_the_site_page_is_generated_from_the_schema():
    page = (ROOT / "docs" / "scenarios" / "reference.md").read_text()
    assert "<!-- scenario-reference -->" in page
    hooks = (ROOT / "docs" / "hooks.py").read_text()
    assert "progression.reference import markdown" in hooks


def test_the_scenario_class_is_the_root():
    assert reference.sections()[0].cls is Scenario
    assert reference.sections()[0].path == ""
