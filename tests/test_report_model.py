"""Issue 24: the report model holds data cells (value, spread, mark, bold), and each
format is one writer in one registry, so a new format touches one place."""

from __future__ import annotations

import statistics

import pytest

from afbench.errors import AfbenchError
from afbench.report import gallery, render
from afbench.report.model import BETTER, WORSE, Cell, Table
from afbench.report.writers import FORMATS
from report_sweeps import BASE, fake_sweep

ERRORS = {"relu": BASE, "tanh": [b + 0.03 for b in BASE], "elu": [b - 0.02 for b in BASE],
          "gelu": [b + 0.001 * (-1) ** i for i, b in enumerate(BASE)]}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = fake_sweep(tmp_path_factory.mktemp("model"), ERRORS)
    return folder, render.write(folder, "relu")


def _row(table: Table, activation: str) -> dict[str, Cell]:
    index = table.columns.index("activation")
    row = next(r for r in table.rows if r[index].value == activation)
    return dict(zip(table.columns, row))


def test_table_cells_are_numbers_with_their_spread_mark_and_bold(written):
    _, report = written
    table = report.table()
    for activation, errors in ERRORS.items():
        cell = _row(table, activation)["error (%)"]
        assert cell.value == pytest.approx(100 * statistics.mean(errors))  # independent: the seeds' errors
        assert cell.spread == pytest.approx(100 * statistics.stdev(errors))
    assert _row(table, "tanh")["error (%)"].mark == "worse" and not _row(table, "tanh")["error (%)"].bold
    assert _row(table, "elu")["error (%)"].mark == "better" and _row(table, "elu")["error (%)"].bold
    assert _row(table, "gelu")["error (%)"].mark == "" and _row(table, "relu")["error (%)"].mark == ""
    assert _row(table, "relu")["params"].value == 1000


def test_a_cell_is_written_from_its_data():
    assert Cell(2.5, "{:.2f}", spread=0.25, mark="worse").text() == f"2.50 ± 0.25 {WORSE}"
    assert Cell(1.0, "{:.3g}", interval=(0.9, 1.2)).text() == "1 [0.9, 1.2]"
    assert Cell(None, "{:.2f}", missing="not reached").text() == "not reached"
    assert Cell(0.5, "{:.1f}", suffix="(2/3 reached)", mark="better").text() == f"0.5 (2/3 reached) {BETTER}"


def test_every_builtin_format_writes_the_same_cells_its_own_way(written):
    folder, report = written
    tanh = _row(report.table(), "tanh")["error (%)"].text()  # e.g. '14.12 ± 1.46 ▲'
    number = tanh.split(" ▲")[0].replace("±", "").split()
    assert {"markdown", "latex", "html"} <= set(FORMATS.names())
    md, tex, page = ((folder / n).read_text() for n in ("summary.md", "summary.tex", "report.html"))
    assert f"| {tanh} |" in md
    assert f"{number[0]} $\\pm$ {number[1]} $\\blacktriangle$" in tex
    assert f"<td>{tanh}</td>" in page
    elu = _row(report.table(), "elu")["error (%)"].text()
    assert f"**{elu}**" in md and f"\\textbf{{" in tex and f"<td><strong>{elu}</strong></td>" in page


class _TsvWriter:
    """A format added in one place: this class and its registration."""

    file_name = "summary.tsv"

    def render(self, document, images):
        table = document.section("comparison").tables[0]
        return "\n".join("\t".join(c.text() for c in row) for row in [[Cell(h) for h in table.columns],
                                                                     *table.rows]) + "\n"


@pytest.fixture
def no_figures(monkeypatch):
    """Figures play no part in what these tests check: skipping them keeps the tests fast."""
    monkeypatch.setattr(gallery, "choose", lambda report: [])


def test_a_registered_format_is_written_with_no_other_change(tmp_path, monkeypatch, no_figures):
    monkeypatch.setitem(FORMATS._entries, "tsv", _TsvWriter())
    folder = fake_sweep(tmp_path, {"relu": BASE[:3], "tanh": [b + 0.01 for b in BASE[:3]]})
    render.write(folder, "relu")
    lines = (folder / "summary.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["dataset", "model", "activation"] and len(lines) == 3
    assert (folder / "summary.md").exists()  # the built-in formats still written


def test_a_format_cannot_write_outside_the_report_folder(tmp_path, monkeypatch, no_figures):
    escaping = type("Escaping", (_TsvWriter,), {"file_name": "../escaped.tsv"})()
    monkeypatch.setitem(FORMATS._entries, "escaping", escaping)
    folder = fake_sweep(tmp_path / "out", {"relu": BASE[:2]})
    with pytest.raises(AfbenchError, match="outside the report folder"):
        render.write(folder, "relu")
    assert not (tmp_path / "escaped.tsv").exists()


def test_an_installed_package_adds_a_format_through_its_entry_point(tmp_path, monkeypatch, no_figures):
    from importlib import metadata

    from afbench import plugins

    point = metadata.EntryPoint("tsv", "test_report_model:_TsvWriter", "afbench.report_formats")
    monkeypatch.setattr(plugins.metadata, "entry_points",
                        lambda group: [point] if group == "afbench.report_formats" else [])
    monkeypatch.setattr(FORMATS, "_entries", dict(FORMATS._entries))  # restored after the test
    monkeypatch.setattr(FORMATS, "_plugins_loaded", False)
    folder = fake_sweep(tmp_path, {"relu": BASE[:3], "tanh": [b + 0.01 for b in BASE[:3]]})
    render.write(folder, "relu")
    assert "tsv" in FORMATS.names() and (folder / "summary.tsv").read_text().startswith("dataset\tmodel")
