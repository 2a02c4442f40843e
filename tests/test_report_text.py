"""Issue 30: text is text, and a report is written whole or not at all.

Every user-supplied name (class folders, activations, data sets) is shown as the text
it is: in figures (never parsed as mathtext; bytes that are not UTF-8 shown escaped),
in Markdown, HTML and LaTeX (escaped for each), in CSV (no formula injection) and in
file names (sanitised, inside the report's folder). A disk that fills while the report
is written ends in one AfbenchError and leaves the previous report untouched."""

from __future__ import annotations

import io
from contextlib import contextmanager
import re
import resource
import signal

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from afbench.errors import AfbenchError
from afbench.report import figures, gallery, render
from afbench.report.writers import files
from report_sweeps import BASE, fake_sweep

TEX_NAME = r"$\notacommand{x}$"  # mathtext would fail on it (ParseFatalException)
NOT_UTF8 = b"caf\xe9".decode("utf-8", "surrogateescape")  # a Latin-1 folder name, as os.listdir returns it
HOSTILE = {"relu": BASE[:4], TEX_NAME: [b + 0.01 for b in BASE[:4]], "<b>x</b> *y* _z_": [b + 0.02 for b in BASE[:4]],
           "=HYPERLINK(\"http://evil\")": [b - 0.01 for b in BASE[:4]]}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    meta = {"class_counts": {"imagefolder:/data/x": {"classes": [TEX_NAME, NOT_UTF8, "ok"],
                                                      "counts": {"train": [3, 4, 5], "test": [1, 1, 1]}}}}
    fake_sweep(folder, HOSTILE, meta=meta)
    return folder, render.write(folder, "relu")


def _texts(figure) -> list[str]:
    figure.canvas.draw()  # tick labels exist only once drawn
    return [t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_parse_math"))]


def test_figures_draw_every_name_as_written(hostile):
    _, report = hostile
    classes = next(f for name, f in report.figures.items() if name.startswith("classes-"))
    drawn = classes.draw()
    drawn.savefig(io.BytesIO(), format="png")  # mathtext or a lone surrogate raised here before
    shown = _texts(drawn)
    assert figures.plain(TEX_NAME) in shown and "caf\\xe9" in shown
    forest = report.figures["difference-from-baseline-digits-mlp"].draw()
    forest.savefig(io.BytesIO(), format="png")
    label = next(t for t in forest.axes[0].get_yticklabels() if "notacommand" in t.get_text())
    # Drawn as text: matplotlib's own preprocessing says it is not mathtext and unescapes the '$'.
    assert label._preprocess_math(label.get_text()) == (TEX_NAME, False)


def test_names_are_escaped_for_markdown_html_and_latex(hostile):
    folder, _ = hostile
    md = MarkdownIt().enable("table").render((folder / "summary.md").read_text())
    assert "<td>&lt;b&gt;x&lt;/b&gt; *y* _z_</td>" in md  # no bold, no emphasis: the name as written
    page = (folder / "report.html").read_text()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt; *y* _z_" in page
    from pylatexenc.latexwalker import LatexWalker

    tex = (folder / "summary.tex").read_text()
    LatexWalker(tex, tolerant_parsing=False).get_latex_nodes()  # balanced: every name escaped
    assert r"\$\textbackslash{}notacommand\{x\}\$" in tex


def test_csv_cells_never_start_a_formula(hostile):
    folder, _ = hostile
    for name in ("runs.csv", "summary.csv", "summary_stats.csv", "epochs.csv"):
        frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        cells = [c for c in frame.to_numpy().ravel() if c] + list(frame.columns)
        risky = [c for c in cells if c[0] in "=+@\t\r" or (c[0] == "-" and c != "-" and not _number(c))]
        assert not risky, (name, risky[:3])
        if "activation" in frame:
            assert "'=HYPERLINK(\"http://evil\")" in set(frame["activation"])  # kept, shown as text
    assert pd.read_csv(folder / "runs.csv")["error_rate"].dtype == float  # numbers stay numbers


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("text", ["../../etc/passwd", "..", "a/../../b", NOT_UTF8, "", "x" * 500, "C:\\x", "-rf"])
def test_figure_file_names_are_plain_and_stay_in_the_folder(text, tmp_path):
    name = gallery.file_name(f"accuracy-{text}")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name) and not name.startswith("-")
    assert (tmp_path / "figures" / f"{name}.png").resolve().parent == (tmp_path / "figures").resolve()


@contextmanager
def file_size_limit(limit: int):
    """A disk that fills: no file can grow past ``limit`` bytes (EFBIG, as ENOSPC would)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_full_disk_keeps_the_previous_report_and_says_what_was_not_written(tmp_path, monkeypatch):
    folder = fake_sweep(tmp_path, {"relu": BASE, "tanh": [b + 0.03 for b in BASE]})
    previous = {"summary.md": b"previous summary", "report.html": b"previous page", "tests.csv": b"previous tests",
                "figures/accuracy-digits-mlp.png": b"previous figure"}
    for name, content in previous.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(content)

    def write_on_a_filling_disk(*args):  # the disk fills once the database is read, while the report is written
        with file_size_limit(30_000):
            return files.write_all(*args)

    monkeypatch.setattr(render, "write_all", write_on_a_filling_disk)
    with pytest.raises(AfbenchError, match=r"was not written: File too large while writing .*Not written: "
                                           r".*report\.html.*previous report files there are unchanged"):
        render.write(folder, "relu")  # report.html, with its figures, is larger than 30 kB
    for name, content in previous.items():
        assert (folder / name).read_bytes() == content, name
    assert not (folder / "runs.csv").exists() and not list(folder.rglob("*.tmp"))  # all or nothing


def test_an_interrupted_write_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    folder = tmp_path
    (folder / "summary.md").write_text("the previous report\n")
    written = []
    real_fsync = files.os.fsync

    def failing_fsync(fd):  # the disk fills after two files
        written.append(fd)
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    with pytest.raises(AfbenchError, match="No space left on device while writing summary.md"):
        files.write_all(folder, {"a.csv": b"1\n", "figures/b.png": b"png", "summary.md": b"new\n", "c.csv": b"2"})
    assert (folder / "summary.md").read_text() == "the previous report\n"
    assert not (folder / "a.csv").exists() and not list(folder.rglob("*.tmp"))


def test_names_that_are_not_utf8_are_shown_escaped_in_every_format():
    from afbench.report.model import Cell, Document, Section, Table, display
    from afbench.report.writers import FORMATS

    assert display(NOT_UTF8) == "caf\\xe9" and display("naïve ▲") == "naïve ▲"
    doc = Document("results", [Section("Verdict", bullets=[f"{NOT_UTF8} is undecided"], key="verdict"),
                               Section("Table", tables=[Table(["activation"], [[Cell.text_of(NOT_UTF8)]])])])
    for name, writer in FORMATS.items():
        text = writer.render(doc, {})
        text.encode("utf-8")  # a lone surrogate here would fail the file's write
        assert "caf\\" in text and "xe9" in text, name


MARKDOWN_TRAPS = ["-2.350", "- x", "+ y", "# h", "> q", "1. x", "*a*", "_b_", "a_b_c", "<i>x</i>", "[a](b)",
                  "&amp;", "x * sigmoid(1.5 * x)", "`c`", "~~s~~", "p < 0.05", "a\\b", "**", TEX_NAME]


@pytest.mark.parametrize("where", ["paragraph", "cell"])
def test_markdown_renders_every_name_as_the_same_text(where):
    # The reference is an independent CommonMark parser: the text it reads back is the name.
    from afbench.report.model import Cell, Document, Section, Table
    from afbench.report.writers.markdown import MarkdownWriter

    if where == "paragraph":
        sections = [Section(f"s{i}", [text], key="verdict") for i, text in enumerate(MARKDOWN_TRAPS)]
    else:
        sections = [Section("t", tables=[Table(["name"], [[Cell.text_of(t)] for t in MARKDOWN_TRAPS])])]
    tokens = MarkdownIt("commonmark").enable("table").enable("strikethrough").parse(
        MarkdownWriter().render(Document("r", sections), {}))
    inline = [t for t in tokens if t.type == "inline" and t.content not in ("r", "name", "t")
              and not re.fullmatch(r"s\d+", t.content)]
    read = ["".join(c.content for c in t.children) if all(c.type == "text" for c in t.children) else
            f"markup: {[c.type for c in t.children]}" for t in inline]
    assert read == MARKDOWN_TRAPS
