"""report.html: one self-contained page (figures embedded as base64), every text escaped."""

from __future__ import annotations

import base64
import html
from typing import Mapping

from afbench.report.model import Cell, Document, Figure, Section, Table, display

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1180px;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
ul.verdict li{margin:.3em 0}
table{border-collapse:collapse;font-size:13px;margin:.6em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;white-space:nowrap}th{background:#f0f0f0}
tbody tr:nth-child(even){background:#fafafa}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
section.main-figure .gallery{grid-template-columns:1fr}
figure{margin:0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#444;margin-top:.3em}
section.main-figure figure img{max-width:820px}
.scroll{overflow-x:auto}
"""


def escape(text: object) -> str:
    return html.escape(display(text), quote=True)


def cell(value: Cell) -> str:
    text = escape(value.text())
    return f"<td><strong>{text}</strong></td>" if value.bold else f"<td>{text}</td>"


def table(t: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
    body = "\n".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in t.rows)
    return f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def figure(f: Figure, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{escape(f.name)}"><img alt="{escape(f.caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(f.caption)}</figcaption></figure>")


def section(s: Section, images: Mapping[str, bytes]) -> str:
    parts = [f"<h2>{escape(s.heading)}</h2>"]
    parts += [f"<p>{escape(p)}</p>" for p in s.paragraphs]
    if s.bullets:
        items = "".join(f"<li>{escape(line)}</li>" for line in s.bullets)
        parts.append(f'<ul class="{escape(s.key)}">{items}</ul>')
    parts += [table(t) for t in s.tables if len(t)]
    shown = [figure(f, images[f.name]) for f in s.figures if f.name in images]
    if shown:
        parts.append('<div class="gallery">' + "".join(shown) + "</div>")
    return f'<section class="{escape(s.key)}">' + "\n".join(parts) + "</section>"


class HtmlWriter:
    file_name = "report.html"

    def render(self, document: Document, images: Mapping[str, bytes]) -> str:
        body = "\n".join(section(s, images) for s in document.shown())
        return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{escape(document.title)}</title>\n<style>{STYLE}</style></head><body>\n"
                f"<h1>{escape(document.title)}</h1>\n{body}\n</body></html>\n")
