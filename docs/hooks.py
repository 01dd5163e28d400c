"""MkDocs hook: pages generated from the code at build time.

``<!-- scenario-reference -->`` in a page becomes the scenario reference generated from the
schema (:func:`progression.reference.markdown`), so the site always documents the schema of the
code it is built from. The repository root goes first on ``sys.path`` so that the source tree
is documented, as mkdocstrings reads it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- scenario-reference -->"


def on_config(config):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_page_markdown(markdown, page, config, files):
    if MARKER not in markdown:
        return markdown
    from progression.reference import markdown as reference
    from progression.reference import undocumented

    problems = undocumented()
    if problems:  # a key without its description fails the strict build, naming the key
        raise SystemExit("scenario reference incomplete:\n" + "\n".join(problems))
    return markdown.replace(MARKER, reference())
