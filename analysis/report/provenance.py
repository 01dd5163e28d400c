"""The report's title and the line under it: the scenario's name and description, and the
run's facts from its manifest (patients, seed, arms, scenario hash, version)."""

from __future__ import annotations

import html
import json
import tomllib

from analysis.report.context import Context


def provenance(ctx: Context) -> tuple[str, str]:
    """The title (HTML-escaped) and the subtitle (HTML) of the report of ``ctx``'s run."""
    name, text = ctx.path.name, ""
    scenario = ctx.path / "scenario.toml"
    if scenario.is_file():
        try:
            doc = tomllib.loads(scenario.read_text())
            name = doc.get("name", name)
            text = doc.get("description", "")
        except tomllib.TOMLDecodeError:
            pass
    facts = []
    manifest = ctx.path / "manifest.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
            facts = [
                f"{m.get('patients', len(ctx.cohort)):,} patients",
                f"seed {m.get('seed')}",
                f"arms: {', '.join(m.get('arms', []))}",
                f"scenario hash {str(m.get('scenario_hash', ''))[:12]}",
                f"progression {m.get('version', '?')}",
            ]
        except (json.JSONDecodeError, AttributeError):
            facts = []
    meta = " &middot; ".join(html.escape(f) for f in facts)
    return html.escape(str(name)), f"{html.escape(text)}<br><span class=meta>{meta}</span>"
