"""Issue 15: stable run identity, one sweep path, and input that never breaks afbench."""

import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass

import pytest

from afbench.cli import main
from afbench.config import RunConfig
from afbench.engine import train as engine
from afbench.errors import AfbenchError
from afbench.results import Status
from afbench.sweep import Grid, LocalBackend, Runtime, calibrate, execute
from afbench.store import database as store_module
from afbench.store.database import Store

FIXTURE = __import__("pathlib").Path(__file__).parent / "fixtures" / "results-v0.1.0.sqlite"
QUIET = Runtime(progress=False, workers=1, stack=1)


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")


# ---- identity -----------------------------------------------------------------------

def test_a_run_key_is_pinned():
    # A literal: any change to how keys are made must be deliberate (and migrate stored keys).
    assert RunConfig().key() != RunConfig(epochs=11).key()  # a setting away from its default is identity
    assert RunConfig(activation="tanh", seed=3).key() == "24b00c2c6afae5fa"


def test_a_new_setting_with_a_default_leaves_every_key_unchanged():
    @dataclass(frozen=True)
    class Newer(RunConfig):
        label_smoothing: float = 0.0  # a setting a later afbench might add

    for config in (RunConfig(), RunConfig(activation="elu", seed=4, epochs=3, target=0.9)):
        newer = Newer(**config.to_dict())
        assert newer.key() == config.key()
        assert Newer(**config.to_dict(), label_smoothing=0.1).key() != config.key()


def test_unknown_stored_fields_are_an_error_not_dropped():
    with pytest.raises(AfbenchError, match="unknown fields \\['mystery'\\]"):
        RunConfig.from_dict({**RunConfig().to_dict(), "mystery": 1})


def test_a_database_written_by_afbench_0_1_0_resumes_without_retraining(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "results.sqlite")
    grid = Grid(RunConfig(epochs=2, latency_samples=20), ("relu", "tanh"), seeds=(0, 1))
    outcome = execute(grid, tmp_path, LocalBackend(QUIET), device="cpu")
    assert outcome.counts == {"ran": 0, "skipped": 4, "failed": 0}
    store = Store(tmp_path)
    records = store.records()
    assert len(records) == 4 and all(r.status == Status.DONE for r in records)
    assert {r.key for r in records} == {c.key() for c in outcome.configs}  # re-keyed, epochs kept with them
    assert len(store.epoch_records()) == 8


# ---- names ----------------------------------------------------------------------------

def test_names_are_canonical_everywhere(tmp_path, capsys):
    argv = ["run", "--activations", "relu,RELU,ReLU,swish,silu", "--baseline", "ReLU", "--epochs", "1",
            "--latency-samples", "5", "--out", str(tmp_path), "--no-progress", "--workers", "1", "--cost-profile", "off"]
    assert main(argv) == 0
    out = capsys.readouterr().err
    assert "already in the sweep: trained once" in out
    assert sorted(r.config["activation"] for r in Store(tmp_path).records()) == ["relu", "silu"]
    argv[2] = "RELU,Swish"  # the same runs under other spellings: nothing retrained
    assert main(argv) == 0
    assert "ran 0, skipped 2" in capsys.readouterr().err


def test_formulas_keep_their_commas(tmp_path):
    assert main(["run", "--activations", "relu,maximum(x, 0.1*x),where(x > 0, x, 0.2 * x)", "--epochs", "1",
                 "--latency-samples", "5", "--out", str(tmp_path), "--no-progress", "--workers", "1",
                 "--cost-profile", "off"]) == 0
    assert len(Store(tmp_path).records()) == 3


# ---- bad input: clear errors, before anything is computed -----------------------------

@pytest.mark.parametrize("flags,message", [
    (["--lr", "fast"], "--lr: expected learning rates such as 3e-4,1e-3, each a number > 0"),
    (["--lr", "nan"], "--lr: expected learning rates such as 3e-4,1e-3, each a number > 0"),
    (["--seeds", "abc"], "--seeds: expected N from 1 to 10,000"),
    (["--seeds", "0"], "--seeds: expected N from 1 to 10,000"),
    (["--threads", "0"], "--threads: expected a whole number >= 1"),
    (["--threads", "-1"], "--threads: expected a whole number >= 1"),
    (["--device", "foo"], "--device: expected auto, cpu, cuda"),
    (["--train-subset", "0"], "--train-subset: expected a whole number >= 1"),
    (["--train-subset", "-5"], "--train-subset: expected a whole number >= 1"),
    (["--weight-decay", "-1"], "--weight-decay: expected a number >= 0"),
    (["--momentum", "-1"], "--momentum: expected a number in [0, 1)"),
    (["--activations", ""], "--activations: expected at least one activation"),
    (["--epochs", "0"], "--epochs: expected a whole number >= 1"),
])
def test_bad_flag_values_are_refused_by_name(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *flags])
    assert exit_info.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())  # wrapped to 80 columns


@pytest.mark.parametrize("flags,message", [
    (["--model", "foo"], "unknown model 'foo'"),
    (["--activations", "x" + " + x" * 990], "too long"),  # the rule says "longer: too long"
    (["--activations", "(" * 300 + "x" + ")" * 300], "not a valid expression"),
    (["--activations", "bad_import_module:Act"], "RuntimeError: broken on import"),
])
def test_bad_settings_fail_before_any_run_is_queued(flags, message, tmp_path, capsys, monkeypatch):
    (tmp_path / "bad_import_module.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    code = None
    try:
        code = main(["run", *flags, "--out", str(out)])
    except SystemExit as err:
        code = err.code
    assert code == 2
    captured = capsys.readouterr()
    assert message in " ".join((captured.out + captured.err).split())
    assert not (out / "results.sqlite").exists()  # nothing queued, nothing recorded as failed


def test_out_naming_a_file_is_a_clear_error(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("not a folder")
    assert main(["run", "--out", str(target)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_corrupt_or_foreign_database_is_refused_and_left_alone(tmp_path):
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "results.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AfbenchError, match="not an afbench results database"):
        Store(tmp_path / "corrupt")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    db = sqlite3.connect(foreign / "results.sqlite")
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(AfbenchError, match="another program \\(tables: invoices\\)"):
        Store(foreign)
    tables = sqlite3.connect(foreign / "results.sqlite").execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("invoices",)]


def test_a_held_write_lock_is_waited_for_then_reported(tmp_path, monkeypatch):
    Store(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "results.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(store_module, "LOCK_WAIT_S", 1.5)
    store = Store.__new__(Store)  # open without migrating (that needs the lock too)
    store.path, store.db = tmp_path / "results.sqlite", sqlite3.connect(tmp_path / "results.sqlite", timeout=0.1,
                                                                        isolation_level=None)
    store.db.execute("PRAGMA busy_timeout=100")
    store.db.row_factory = sqlite3.Row
    with pytest.raises(AfbenchError, match="stayed locked by another process"):
        store.set_meta("x", 1)
    holder.execute("COMMIT")
    store.set_meta("x", 1)  # free again: the write goes through
    assert store.meta()["x"] == 1


def test_a_database_locked_while_it_opens_is_waited_for_not_called_foreign(tmp_path, monkeypatch):
    """Another process creating or opening the same results.sqlite can make SQLite answer
    "locked" at once, even with a busy timeout: that is a wait, not a foreign database."""
    Store(tmp_path).close()
    real, answers = Store._check_foreign, ["locked"]

    def locked_once(self):
        if answers:
            answers.pop()
            raise sqlite3.OperationalError("database is locked")
        real(self)

    monkeypatch.setattr(Store, "_check_foreign", locked_once)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    store = Store(tmp_path)  # waited once, then opened
    assert not answers and store.meta() is not None


# ---- faults: recorded, and said by the exit code ----------------------------------------

def test_failed_runs_give_a_non_zero_exit(tmp_path, capsys, monkeypatch):
    real = engine.train

    def fails_for_tanh(config, data, on_epoch=None, **options):
        if config.activation == "tanh":
            raise ValueError("boom")
        return real(config, data, on_epoch, **options)

    monkeypatch.setattr(engine, "train", fails_for_tanh)  # --workers 1, built-in code: trained in this process
    code = main(["run", "--activations", "relu,tanh", "--epochs", "1", "--latency-samples", "5",
                 "--out", str(tmp_path / "out"), "--no-progress", "--workers", "1", "--threads", "1",
                 "--stack", "1", "--cost-profile", "off"])
    assert code == 1
    assert "1 runs failed" in capsys.readouterr().err
    records = {r.config["activation"]: r for r in Store(tmp_path / "out").records()}
    assert records["relu"].status.value == "done" and records["tanh"].status.value == "failed"


@pytest.mark.slow  # 5 s: the user code is checked in a spawned worker
def test_a_user_activation_failing_in_training_gives_a_non_zero_exit(tmp_path, capsys, monkeypatch):
    (tmp_path / "fails_in_forward.py").write_text(
        "import torch\nclass Act(torch.nn.Module):\n    def forward(self, x):\n"
        "        if x.shape[0] > 64:\n            raise ValueError('boom')\n        return x\n")  # passes the
    # up-front check (a few samples), fails on a training batch of 128
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["run", "--activations", "relu,fails_in_forward:Act", "--epochs", "1", "--latency-samples", "5",
                 "--out", str(tmp_path / "out"), "--no-progress", "--workers", "1", "--threads", "1",
                 "--stack", "1", "--cost-profile", "off"])
    assert code == 1
    assert "1 runs failed" in capsys.readouterr().err
    statuses = sorted(r.status.value for r in Store(tmp_path / "out").records())
    assert statuses == ["done", "failed"]


def test_an_exploding_loss_is_recorded_as_diverged(digits):
    result = engine.train(RunConfig(epochs=2, lr=1e3, latency_samples=5), digits)
    assert result.status == Status.DIVERGED and result.summary.diverged_epoch == 1
    assert engine.diverged(float("nan"), 10) and engine.diverged(3.2e12, 10)
    assert not engine.diverged(2.4, 10)  # chance level for 10 classes is ln 10 = 2.30


def test_workers_times_threads_never_exceeds_the_cores(monkeypatch):
    monkeypatch.setattr(calibrate, "available_cores", lambda: 2)
    for runtime in (Runtime(workers=8, threads=2), Runtime(workers=1, threads=16), Runtime(threads=16)):
        plan = calibrate.plan(runtime, RunConfig(), None, 10)
        assert plan["workers"] * plan["threads"] <= 2, (runtime, plan)


# ---- image folders and archives ---------------------------------------------------------

def _png(path, value):
    from PIL import Image
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(path)


def test_a_one_class_image_folder_is_refused(tmp_path):
    from afbench.data.imagefolder import load_imagefolder
    from afbench.data import DataError

    for i in range(4):
        _png(tmp_path / "only" / f"{i}.png", i)
    with pytest.raises(DataError, match="needs at least 2 class folders"):
        load_imagefolder(tmp_path)


def test_symlinked_class_folders_are_followed(tmp_path):
    from afbench.data.imagefolder import load_imagefolder

    for cls in ("a", "b"):
        for i in range(3):
            _png(tmp_path / "elsewhere" / cls / f"{i}.png", 10 * i)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a").symlink_to(tmp_path / "elsewhere" / "a")
    (folder / "b").symlink_to(tmp_path / "elsewhere" / "b")
    (folder / "b" / "loop").symlink_to(folder)  # a link back up the tree is not walked twice
    loaded = load_imagefolder(folder)
    assert loaded.classes == ("a", "b") and len(loaded.train_y) + len(loaded.test_y) == 6


def test_archive_members_are_filtered_by_name_before_decompressing(tmp_path, monkeypatch):
    import zipfile

    from afbench.data import DataError, imagefolder
    from afbench.data.imagefolder import load_imagefolder

    for cls in ("a", "b"):
        for i in range(2):
            _png(tmp_path / "src" / cls / f"{i}.png", 50 * i)
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for png in (tmp_path / "src").rglob("*.png"):
            z.write(png, png.relative_to(tmp_path / "src").as_posix())
        z.writestr("notes/huge.bin", b"\0" * (3 * 2**20))  # 3 MB of zeros, a few KB compressed
    monkeypatch.setattr(imagefolder, "MAX_IMAGE_BYTES", 2**20)  # the huge member would break a 1 MB cap...
    assert load_imagefolder(archive).classes == ("a", "b")  # ...but it is never decompressed
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("a/bomb.png", b"\0" * (3 * 2**20))  # an image-named member over the cap
    with pytest.raises(DataError, match="over afbench's limit"):
        load_imagefolder(archive)


def test_an_image_bomb_is_a_data_error(tmp_path, monkeypatch):
    from PIL import Image

    from afbench.data import DataError
    from afbench.data.imagefolder import load_imagefolder

    for cls in ("a", "b"):
        _png(tmp_path / cls / "0.png", 1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 8x8 = 64 pixels > 2 x 10: a "bomb"
    with pytest.raises(DataError, match="too many pixels"):
        load_imagefolder(tmp_path)


def test_a_foreign_database_is_not_even_switched_to_wal(tmp_path):
    db = sqlite3.connect(tmp_path / "results.sqlite")
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(AfbenchError):
        Store(tmp_path)
    mode = sqlite3.connect(tmp_path / "results.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "delete"


def test_bad_data_leaves_no_database_behind(tmp_path, capsys):
    assert main(["run", "--dataset", f"imagefolder:{tmp_path / 'missing'}", "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out" / "results.sqlite").exists()


def test_a_capped_plan_says_so(monkeypatch):
    monkeypatch.setattr(calibrate, "available_cores", lambda: 2)
    assert "capped to the 2 cores" in calibrate.plan(Runtime(workers=8, threads=2), RunConfig(), None, 10)["how"]
