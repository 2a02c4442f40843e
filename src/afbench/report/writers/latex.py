"""summary.tex: a complete document (pdflatex summary.tex): booktabs tables, the figures
from figures/, every text escaped so that any name compiles and reads as written."""

from __future__ import annotations

from typing import Mapping

from afbench.report.model import BETTER, WORSE, Cell, Document, Section, Table, display

_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
             "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
             "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", "\n": " ",
             "±": r"$\pm$", WORSE: r"$\blacktriangle$", BETTER: r"$\blacktriangledown$", "≈": r"$\approx$",
             "×": r"$\times$", "−": "-", "–": "--", "—": "---", "…": r"\ldots{}",
             "≤": r"$\leq$", "≥": r"$\geq$",
             "·": r"$\cdot$", "τ": r"$\tau$", "²": r"\textsuperscript{2}", "³": r"\textsuperscript{3}",
             "‘": "`", "’": "'", "“": "``", "”": "''"}


def escape(text: object) -> str:
    """Text for LaTeX: every special character escaped; a character T1-encoded pdflatex
    cannot set (outside Latin-1, not in the table above) is written as its code point."""
    out = []
    for ch in display(text):
        if ch in _SPECIALS:
            out.append(_SPECIALS[ch])
        elif ord(ch) < 32 or 127 <= ord(ch) < 160:  # control characters
            out.append(" ")
        elif ord(ch) < 256:
            out.append(ch)
        else:
            out.append(f"[U+{ord(ch):04X}]")
    return "".join(out)


def cell(value: Cell) -> str:
    text = escape(value.text())
    return rf"\textbf{{{text}}}" if value.bold else text


def table(t: Table) -> str:
    return "\n".join([r"\begin{tabular}{" + "l" * len(t.columns) + "}", r"\toprule",
                      " & ".join(escape(c) for c in t.columns) + r" \\", r"\midrule",
                      *(" & ".join(cell(c) for c in row) + r" \\" for row in t.rows),
                      r"\bottomrule", r"\end{tabular}", ""])


def section(s: Section, images: Mapping[str, bytes]) -> list[str]:
    lines = [rf"\section*{{{escape(s.heading)}}}"]
    lines += [escape(p) + "\n" for p in s.paragraphs]
    if s.bullets:
        lines += [r"\begin{itemize}", *(rf"\item {escape(b)}" for b in s.bullets), r"\end{itemize}"]
    lines += [table(t) for t in s.tables if len(t)]
    for f in s.figures:
        if f.name in images:  # names are letters, digits, '_' and '-' (afbench.report.gallery.file_name)
            size = r"width=0.7\linewidth,height=0.75\textheight,keepaspectratio"
            lines += [r"\begin{center}", rf"\includegraphics[{size}]{{figures/{f.name}.png}}", "",
                      rf"\small {escape(f.caption)}", r"\end{center}"]
    return lines


class LatexWriter:
    file_name = "summary.tex"

    def render(self, document: Document, images: Mapping[str, bytes]) -> str:
        body = [line for s in document.shown() for line in section(s, images)]
        return "\n".join([r"\documentclass{article}", r"\usepackage[T1]{fontenc}", r"\usepackage[utf8]{inputenc}",
                          r"\usepackage{booktabs,amssymb,graphicx}", r"\usepackage[landscape,margin=1cm]{geometry}",
                          r"\begin{document}", r"\scriptsize", rf"\section*{{{escape(document.title)}}}", *body,
                          r"\end{document}"]) + "\n"
