"""summary.md: the report as Markdown (GitHub-flavoured tables), user text escaped."""

from __future__ import annotations

import re
from typing import Mapping

from afbench.report.model import Cell, Document, Table, display

# Markdown would read these as markup inside a name or formula ('x * sigmoid(x)', '_x_',
# '<script>', '[a](b)'): each is escaped so the text reads as it was written.
_ESCAPES = [
    (re.compile(r"([\\`*~])"), r"\\\1"),
    (re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"), r"\\_"),  # intraword '_' never emphasises
    (re.compile(r"<(?=[A-Za-z/!?])"), r"\\<"),  # a tag; 'p < 0.05' stays as written
    (re.compile(r"\](?=[(\[:])"), r"\\]"),  # a link
    (re.compile(r"&(?=#?\w+;)"), r"&amp;"),  # an entity
    (re.compile(r"^([#>+=-])", re.M), r"\\\1"),  # a heading, quote or list at the start of a line
]


def escape(text: object) -> str:
    """``text`` as Markdown that renders as the same text."""
    out = display(text)
    for pattern, replacement in _ESCAPES:
        out = pattern.sub(replacement, out)
    return out


def cell(value: Cell) -> str:
    text = escape(value.text()).replace("|", "\\|").replace("\n", " ")  # a pipe would split the cell
    return f"**{text}**" if value.bold else text


def table(t: Table) -> str:
    header = "| " + " | ".join(escape(c).replace("|", "\\|") for c in t.columns) + " |"
    lines = [header, "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines) + "\n"


class MarkdownWriter:
    file_name = "summary.md"

    def render(self, document: Document, images: Mapping[str, bytes]) -> str:
        parts = [f"# {escape(document.title)}\n"]
        for section in document.shown():
            parts.append(f"\n## {escape(section.heading)}\n\n")
            parts += [escape(p) + "\n\n" for p in section.paragraphs]
            if section.bullets:
                parts.append("\n".join(f"- {escape(line)}" for line in section.bullets) + "\n\n")
            parts += [table(t) + "\n" for t in section.tables if len(t)]
            parts += [f"![{escape(f.caption)}](figures/{f.name}.png)\n\n{escape(f.caption)}\n\n"
                      for f in section.figures if f.name in images]
        return "".join(parts).rstrip("\n") + "\n"
