"""The HTML page: its style, tables, figures (PNG embedded as base64) and the whole document."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

CSS = """
body { font-family: Georgia, 'DejaVu Serif', serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1.5rem; color: #222; line-height: 1.5; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.3rem; margin-top: 2.4rem; border-bottom: 1px solid #ccc; }
.meta { color: #666; font-size: 0.85rem; font-family: sans-serif; }
.warning { color: #8a1c1c; background: #fdecea; padding: 0.5rem; font-family: sans-serif; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; }
figcaption, .caption { font-size: 0.88rem; color: #444; text-align: left; }
.caption { margin: 1.6rem 0 0.3rem 0; }
table { border-collapse: collapse; margin: 0 0 1.2rem 0; font-family: sans-serif;
        font-size: 0.82rem; }
th, td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #e3e3e3; text-align: right;
         white-space: nowrap; }
th { border-bottom: 1.5px solid #888; font-weight: 600; }
td:first-child, th:first-child, td:nth-child(2), th:nth-child(2) { text-align: left; }
code { font-size: 0.85em; }
.wide { overflow-x: auto; }
"""


def table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> str:
    """A table of HTML cells under its caption."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f'<p class=caption>{caption}</p><div class=wide><table><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{body}\n</tbody></table></div>"
    )


def blank_repeats(rows: list[list[str]], columns: int = 1) -> list[list[str]]:
    """Rows with a leading cell left blank where it repeats the row above (grouped tables)."""
    out, last = [], None
    for r in rows:
        key = r[:columns]
        out.append(([""] * columns if key == last else key) + r[columns:])
        last = key
    return out


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def figure(fig, number: int, caption: str) -> str:
    """A matplotlib figure as an embedded PNG under its number and caption."""
    return (
        f'<figure><img alt="Figure {number}" src="data:image/png;base64,{_png(fig)}">'
        f"<figcaption><b>Figure {number}.</b> {caption}</figcaption></figure>"
    )


def not_drawn(name: str, error: Exception) -> str:
    """A section that failed: its heading and the first line of the reason."""
    text = str(error).strip()
    reason = html.escape(text.splitlines()[0] if text else repr(error))
    return f"<h2>{name.capitalize()}</h2><p class=meta>Not drawn: {reason}</p>"


def document(title: str, sub: str, body: str, footer: str) -> str:
    """The whole page: ``title`` and ``sub`` (HTML) head it, ``footer`` (HTML) ends it."""
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{title}: results</title><style>{CSS}</style></head><body>"
        f"<h1>Results: {title}</h1><p>{sub}</p>{body}"
        f"<p class=meta>{footer}</p></body></html>\n"
    )
