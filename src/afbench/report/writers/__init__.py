"""Report formats: one writer per format behind one small protocol, in one registry.

A writer turns the report model (afbench.report.model.Document) into the text of one
file. Adding a format touches one place: a module here registered below, or an
installed package's entry point in the group ``afbench.report_formats`` naming a
writer class or object (``tsv = mypackage.report:TsvWriter``). ``afbench report`` writes every registered format.
"""

from __future__ import annotations

from typing import Mapping, Protocol

from afbench.plugins import Registry
from afbench.report.model import Document
from afbench.report.writers.html import HtmlWriter
from afbench.report.writers.latex import LatexWriter
from afbench.report.writers.markdown import MarkdownWriter

FIGURES = "figures"  # the folder, inside the report's folder, that holds figures/<name>.png


class Writer(Protocol):
    file_name: str  # e.g. "summary.md": a plain name, written inside the report's folder

    def render(self, document: Document, images: Mapping[str, bytes]) -> str:
        """The file's text. ``images``: figure name -> its PNG, also written to
        figures/<name>.png beside the file."""


FORMATS: Registry[Writer] = Registry("report_formats")
for _name, _writer in (("markdown", MarkdownWriter()), ("latex", LatexWriter()), ("html", HtmlWriter())):
    FORMATS.register(_name, _writer)
