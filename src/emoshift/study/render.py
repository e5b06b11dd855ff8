"""The report's building blocks (headings, paragraphs, bullets, tables, images) and their two renderings.

:func:`render_markdown` links images relative to the report's folder; :func:`render_html` writes one
self-contained page: inline CSS and every plot embedded as a base64 PNG data URI (no external file, script or
font). Also the number formats the report uses (percentages, intervals, clock times) and corpus titles.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emoshift.core import progress

CORPUS_TITLES: dict[str, str] = {  # the registered corpora as their authors write them
    "ravdess": "RAVDESS", "crema-d": "CREMA-D", "emodb": "EmoDB", "tess": "TESS", "savee": "SAVEE",
    "iemocap": "IEMOCAP", "msp-podcast": "MSP-Podcast", "esd": "ESD",
}


def corpus_title(name: str) -> str:
    """A corpus as the report names it: ``crema-d`` -> ``CREMA-D``."""
    return CORPUS_TITLES.get(name, name)


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def clock(seconds: float | None) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on), "–" when unknown."""
    return "–" if seconds is None else progress.clock(seconds)


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    path: Path
    alt: str


Block = Heading | Para | Bullets | Table | Image


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block], base: Path) -> str:
    """Markdown with images linked relative to ``base`` (the report's folder)."""
    lines: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            lines += [b.text, ""]
        elif isinstance(b, Bullets):
            lines += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            lines.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            lines.append("|" + "---|" * len(b.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            lines.append("")
        else:
            rel = Path(os.path.relpath(b.path, base)).as_posix()
            lines += [f"![{b.alt}]({rel})", ""]
    return "\n".join(lines).rstrip() + "\n"


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .88rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .55rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
figure { display: inline-block; margin: .4rem 1rem .8rem 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eaeef2; }
figcaption { font-size: .8rem; color: #57606a; }
.wrap { overflow-x: auto; }
"""


def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def render_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained HTML page: inline CSS, plots as base64 data URIs."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
    ]
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{esc(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            parts.append(f"<p>{esc(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in b.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in b.rows
            )
            parts.append(
                f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
            )
        else:
            uri = _data_uri(b.path)
            if uri is None:
                parts.append(f"<p>(plot missing: {esc(b.alt)})</p>")
            else:
                parts.append(
                    f'<figure><img src="{uri}" alt="{esc(b.alt)}"><figcaption>{esc(b.alt)}</figcaption></figure>'
                )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
