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
]
# ... and at the start of a paragraph or list item, these would start a heading, a quote or a list.
_BLOCK_ESCAPES = [
    (re.compile(r"^([#>])", re.M), r"\\\1"),
    (re.compile(r"^([-+])(?=\s|$)", re.M), r"\\\1"),
    (re.compile(r"^(\d+)([.)])(?=\s|$)", re.M), r"\1\\\2"),
]


def escape(text: object, block: bool = False) -> str:
    """``text`` as Markdown that renders as the same text; ``block``: it starts a
    paragraph or list item (a table cell or heading cannot start a list)."""
    out = display(text)
    for pattern, replacement in _ESCAPES + (_BLOCK_ESCAPES if block else []):
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
            parts += [escape(p.strip(), block=True) + "\n\n" for p in section.paragraphs]
            if section.bullets:
                parts.append("\n".join(f"- {escape(line, block=True)}" for line in section.bullets) + "\n\n")
            parts += [table(t) + "\n" for t in section.tables if len(t)]
            parts += [f"![{escape(f.caption)}](figures/{f.name}.png)\n\n{escape(f.caption, block=True)}\n\n"
                      for f in section.figures if f.name in images]
        return "".join(parts).rstrip("\n") + "\n"
