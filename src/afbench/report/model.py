"""The report model: what a report says, as data, before any format writes it.

A ``Document`` is a title and ``Section``s; a section holds paragraphs, bullet lines,
``Table``s and ``Figure``s. Table cells are ``Cell``s: a number with its spread or
interval, a mark (significantly worse / better than the baseline) and a bold flag
(the top group), never pre-formatted strings. Each writer (afbench.report.writers)
decides how a mark or bold looks in its format, and escapes text for it.

Every string that came from a user (activation, data set, class and model names,
formulas, paths) passes through ``display`` before it enters the model: names that
are not valid UTF-8 (a class folder's bytes, kept by Python as lone surrogates) are
shown with their bytes escaped (``\\xff``) instead of failing every writer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

WORSE, BETTER = "▲", "▼"  # marks on the error: significantly worse / better than the baseline
Mark = Literal["", "worse", "better"]
MARK_GLYPHS = {"": "", "worse": WORSE, "better": BETTER}


def display(text: object) -> str:
    """``text`` as a printable str: bytes a file name held that are not UTF-8 (Python's
    surrogate escapes) written as \\xNN, other unencodable code points as \\uNNNN."""
    text = str(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    raw = text.encode("utf-8", "surrogateescape") if _only_escapes(text) else \
        text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def _only_escapes(text: str) -> bool:
    """True when every surrogate in ``text`` is one of surrogateescape's (U+DC80..U+DCFF)."""
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in text)


@dataclass(frozen=True)
class Cell:
    """One table cell. ``value`` is a number (written with ``fmt``) or a text; a number
    may carry its ``spread`` (written ``± sd``) or an ``interval`` (written ``[low, high]``).
    ``suffix`` follows the number ("(2/3 reached)"); ``mark`` and ``bold`` are the
    statistics' verdicts, left to each writer to show."""

    value: float | int | str | None
    fmt: str = "{}"
    spread: float | None = None
    interval: tuple[float, float] | None = None
    suffix: str = ""
    mark: Mark = ""
    bold: bool = False
    missing: str = "-"  # written when value is None or NaN

    @classmethod
    def text_of(cls, text: object) -> Cell:
        """A text cell (a name, a verdict), shown as it is."""
        return cls(display(text))

    @property
    def empty(self) -> bool:
        return self.value is None or (isinstance(self.value, float) and math.isnan(self.value)) or self.value == ""

    def text(self) -> str:
        """The cell as plain text with its mark glyph, without bold (writers add that)."""
        if isinstance(self.value, str):
            body = self.value
        elif self.empty:
            return self.missing
        else:
            body = self.fmt.format(self.value)
            if self.spread is not None and not math.isnan(self.spread):
                body += f" ± {self.fmt.format(self.spread)}"
            if self.interval is not None:
                body += f" [{self.fmt.format(self.interval[0])}, {self.fmt.format(self.interval[1])}]"
        body += f" {self.suffix}" if self.suffix else ""
        return body + (f" {MARK_GLYPHS[self.mark]}" if self.mark else "")


@dataclass
class Table:
    """Rows of cells under ``columns`` headings; every row has one cell per column."""

    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)

    def __post_init__(self):
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"a row of {len(row)} cells under {len(self.columns)} columns")

    def __len__(self) -> int:
        return len(self.rows)

    def without(self, columns: tuple[str, ...], only_if_empty: bool = True) -> Table:
        """The table without ``columns`` (only those whose every cell is empty, by default:
        an unused note column takes space and says nothing)."""
        drop = {i for i, name in enumerate(self.columns) if name in columns
                and (not only_if_empty or all(row[i].empty for row in self.rows))}
        keep = [i for i in range(len(self.columns)) if i not in drop]
        return Table([self.columns[i] for i in keep], [[row[i] for i in keep] for row in self.rows])

    def records(self, bold: tuple[str, str] = ("", "")) -> list[dict[str, str]]:
        """The rows as {heading: text}, ``bold`` around bold cells (for a console)."""
        return [{name: f"{bold[0]}{cell.text()}{bold[1]}" if cell.bold else cell.text()
                 for name, cell in zip(self.columns, row)} for row in self.rows]


@dataclass(frozen=True)
class Figure:
    """A figure of the report: ``name`` is its file stem (already safe as a file name),
    ``caption`` the words a reader sees under it (the title is drawn in the figure)."""

    name: str
    caption: str
    # Draws it: returns a matplotlib Figure (the model does not import matplotlib). Drawn
    # when rendered, not when chosen: a report read for its tables draws nothing, and the
    # renderer may draw figures side by side (render.draw_pngs).
    draw: Callable[[], object]


@dataclass
class Section:
    """A heading and what stands under it, in this order: paragraphs, bullets, tables,
    figures. A section with none of them is left out of every format."""

    heading: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    key: str = ""  # a stable id for links and tests ("verdict", "comparison", ...)

    @property
    def empty(self) -> bool:
        return not (self.paragraphs or self.bullets or any(len(t) for t in self.tables) or self.figures)


@dataclass
class Document:
    title: str
    sections: list[Section] = field(default_factory=list)

    def shown(self) -> list[Section]:
        """The sections a writer writes: the non-empty ones (the verdict always)."""
        return [s for s in self.sections if s.key == "verdict" or not s.empty]

    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)
