"""The workflow sub-commands, on their own parser (cli.py registers them)."""

import argparse

import pytest

from afbench.cli import workflow as workflow_cli
from afbench.errors import AfbenchError
from afbench.sweep import study


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="afbench")
    commands = parser.add_subparsers(dest="command")
    listing = commands.add_parser("list").add_subparsers(dest="what")
    workflow_cli.add_parsers(commands, listing)
    return parser


def _run(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    args.func(args)


def test_show_preset_prints_the_study_file(capsys):
    _run(["show", "preset", "s1-mnist"])
    text = capsys.readouterr().out
    assert text == study.show_preset("s1-mnist")
    assert study.parse_study(text).models == ("lenet",)


def test_list_presets_names_every_preset(capsys):
    _run(["list", "presets"])
    out = capsys.readouterr().out
    assert all(name in out for name in ("s1-mnist", "s1-cifar10", "s2-mlp", "s4-relu-softsign", "s4-cifar100",
                                        "quick"))


def test_export_rejects_an_unknown_tool_and_a_missing_folder(tmp_path):
    with pytest.raises(AfbenchError, match="no results.sqlite"):
        _run(["export", str(tmp_path), "--to", "tensorboard", str(tmp_path / "tb")])
    (tmp_path / "results.sqlite").touch()
    with pytest.raises(AfbenchError, match="unknown export target 'wandb'"):
        _run(["export", str(tmp_path), "--to", "wandb", "x"])


def test_save_study_stores_and_writes_the_resolved_study(tmp_path):
    from afbench.store.database import Store

    resolved = study.parse_study(study.show_preset("s2-mlp"))
    path = study.save_study(tmp_path, resolved)
    assert study.load_study(path) == resolved.with_(execution=resolved.execution.__class__(out=str(tmp_path)))
    store = Store(tmp_path)
    try:
        assert store.meta()["study"]["name"] == "s2-mlp" and store.meta()["study"]["settings"]["epochs"] == 100
    finally:
        store.close()
