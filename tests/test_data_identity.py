"""Data that is what it claims (issue 30): the decoded-data cache sees every change (links
followed), the data carries a content fingerprint, and sources that cannot be data (a
named pipe, a device, too many classes, one image per class) are refused before reading."""

import io
import json
import os
import signal
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from afbench import data
from afbench.config import RunConfig
from afbench.data import imagefolder
from afbench.data.formats import DataError, ImageData


def png(value: int, size=(4, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="PNG")
    return buf.getvalue()


def tree(root, classes: dict[str, int], start: int = 0):
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / name / f"{i}.png").write_bytes(png(start + 10 * len(name) + i))
    return root


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: what a pipe or /dev/zero did before."""
    def expire(*_):
        raise TimeoutError(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_adding_an_image_to_a_linked_class_folder_is_seen(tmp_path):
    elsewhere = tree(tmp_path / "elsewhere", {"cat": 3})
    root = tree(tmp_path / "data", {"dog": 3})
    (root / "cat").symlink_to(elsewhere / "cat", target_is_directory=True)
    first = data.load(f"imagefolder:{root}")
    assert len(first.train_y) + len(first.test_y) == 6
    (elsewhere / "cat" / "new.png").write_bytes(png(200))  # through the link: the folder's own mtime is unchanged
    second = data.load(f"imagefolder:{root}")
    assert len(second.train_y) + len(second.test_y) == 7
    assert second.fingerprint != first.fingerprint


def test_a_rewritten_image_of_the_same_size_is_seen(tmp_path):
    root = tree(tmp_path / "data", {"cat": 2, "dog": 2})
    first = data.load(f"imagefolder:{root}")
    target = root / "cat" / "0.png"
    replacement = png(123)
    assert len(replacement) == target.stat().st_size  # same size: only the time and content differ
    target.write_bytes(replacement)
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    second = data.load(f"imagefolder:{root}")
    assert second.fingerprint != first.fingerprint
    pixels = {int(x.max()) for x in np.concatenate([second.train_x, second.test_x])}
    assert 123 in pixels


def test_the_fingerprint_is_the_content_not_the_place(tmp_path):
    a = data.load(f"imagefolder:{tree(tmp_path / 'a', {'cat': 2, 'dog': 2})}")
    b = data.load(f"imagefolder:{tree(tmp_path / 'b', {'cat': 2, 'dog': 2})}")
    c = data.load(f"imagefolder:{tree(tmp_path / 'c', {'cat': 2, 'dog': 2}, start=1)}")
    assert a.fingerprint == b.fingerprint != c.fingerprint and len(a.fingerprint) == 16
    cached = data.load(f"imagefolder:{tmp_path / 'a'}")  # from the cache: the stored fingerprint
    fresh = ImageData(a.name, a.classes, a.train_x.copy(), a.train_y.copy(), a.test_x.copy(), a.test_y.copy())
    assert cached.fingerprint == fresh.fingerprint
    relabelled = ImageData(a.name, ("dog", "cat"), a.train_x, a.train_y, a.test_x, a.test_y)
    assert relabelled.fingerprint != a.fingerprint
    assert data.prepare(a).fingerprint == a.fingerprint  # what a run trains on says which data it came from
    assert data.fingerprint(f"imagefolder:{tmp_path / 'c'}") == c.fingerprint
    assert data.fingerprint(f"imagefolder:{tmp_path / 'c'}", image_size=2) != c.fingerprint  # resized: other data


@pytest.mark.parametrize("source", ["fifo", "/dev/zero"])
def test_a_pipe_or_a_device_is_refused_before_reading(tmp_path, source):
    if source == "fifo":
        source = tmp_path / "pipe"
        os.mkfifo(source)
    kind = "named pipe" if "pipe" in str(source) else "character device"
    with deadline(20):
        with pytest.raises(DataError, match=f"is a {kind}.*not a regular file or folder"):
            data.load(f"imagefolder:{source}")
        with pytest.raises(DataError, match=f"is a {kind}"):
            data.load(f"npz:{source}")


def test_a_pipe_inside_a_class_folder_is_skipped(tmp_path):
    root = tree(tmp_path / "data", {"cat": 2, "dog": 2})
    os.mkfifo(root / "cat" / "stuck.png")
    with deadline(20):
        loaded = data.load(f"imagefolder:{root}")
    assert len(loaded.train_y) + len(loaded.test_y) == 4


def test_one_image_per_class_is_refused_with_the_fix(tmp_path):
    root = tree(tmp_path / "data", {"cat": 1, "dog": 1, "emu": 2})
    with pytest.raises(DataError, match=r"class 'cat' \(and 1 more classes\) has a single image.*at least 2"):
        data.load(f"imagefolder:{root}")


def test_a_class_without_training_images_is_refused(tmp_path):
    root = tree(tmp_path / "data" / "train", {"cat": 2, "dog": 2})
    tree(tmp_path / "data" / "test", {"cat": 1, "dog": 1, "emu": 1})
    with pytest.raises(DataError, match="class 'emu' has no image in train/"):
        data.load(f"imagefolder:{tmp_path / 'data'}")


def test_too_many_classes_are_refused_before_any_image_is_decoded(tmp_path, monkeypatch):
    monkeypatch.setattr(imagefolder, "MAX_CLASSES", 3)
    root = tmp_path / "data"
    for name in "abcd":
        (root / name).mkdir(parents=True)
        for i in range(2):
            (root / name / f"{i}.png").write_bytes(b"not a png")  # decoding any of them would fail
    with pytest.raises(DataError, match="4 classes \\(8 images\\), over afbench's limit of 3"):
        data.load(f"imagefolder:{root}")


def test_a_class_folder_name_that_is_not_utf8_is_kept_as_escaped_text(tmp_path):
    root = tree(tmp_path / "data", {"dog": 2})
    raw = os.fsencode(root) + b"/caf\xe9"
    os.mkdir(raw)
    for i in range(2):
        with open(raw + f"/{i}.png".encode(), "wb") as handle:
            handle.write(png(50 + i))
    loaded = data.load(f"imagefolder:{root}")
    assert loaded.classes == ("caf\\xe9", "dog")
    json.dumps(list(loaded.classes)).encode("utf-8")  # storable as text: no lone surrogates
    assert data.load(f"imagefolder:{root}").classes == loaded.classes  # from the cache alike


def test_the_fingerprint_is_part_of_a_runs_setting_and_leaves_old_keys_alone(tmp_path):
    root = tree(tmp_path / "data", {"cat": 2, "dog": 2})
    before = RunConfig(dataset=f"imagefolder:{root}")
    assert before.with_(data_fingerprint=None).key() == before.key()  # no fingerprint: the key of old runs
    first = before.with_(data_fingerprint=data.fingerprint(f"imagefolder:{root}"))
    (root / "dog" / "9.png").write_bytes(png(99))
    second = before.with_(data_fingerprint=data.fingerprint(f"imagefolder:{root}"))
    assert len({before.key(), first.key(), second.key()}) == 3  # same name, other data: another run


def test_an_image_size_that_cannot_fit_in_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    if imagefolder._physical_memory() >= 80 * 2**30:
        pytest.skip("4 images of 30000 x 30000 fit in half of this machine's memory")
    root = tree(tmp_path / "data", {"cat": 2, "dog": 2})
    monkeypatch.setattr(imagefolder, "_decode", lambda *a: pytest.fail("decoded"))
    with deadline(20), pytest.raises(DataError, match=r"4 images of 30000x30000 \(--image-size 30000\) take about "
                                                     r"40.2 GB as float32 tensors, over half"):
        data.load(f"imagefolder:{root}", image_size=30000)  # 4 x 3 x 30000^2 x 4 bytes = 40.2 GiB


def test_a_sweep_on_changed_data_trains_again_and_records_which_data(tmp_path):
    """The same command on an image folder that gained an image is another run (the
    fingerprint is in its key), never 'already done'; each run's provenance names its data."""
    from afbench.store.reading import StoreView
    from afbench.sweep import execute

    root = tree(tmp_path / "data", {"cat": 4, "dog": 4})
    base = RunConfig(dataset=f"imagefolder:{root}", model="mlp", epochs=1, batch_size=8, latency_samples=2,
                     probe_size=4, activation="relu")
    first = execute([base], tmp_path / "out", device="cpu")
    assert first.counts["ran"] == 1
    assert execute([base], tmp_path / "out", device="cpu").counts["ran"] == 0  # unchanged: resumed, not retrained
    (root / "dog" / "9.png").write_bytes(png(201))
    assert execute([base], tmp_path / "out", device="cpu").counts["ran"] == 1  # changed: trained again
    with StoreView(tmp_path / "out") as view:
        records = view.records()
    fingerprints = {r.config["data_fingerprint"] for r in records}
    assert len(records) == 2 and len(fingerprints) == 2 and None not in fingerprints
    assert {r.provenance["data_fingerprint"] for r in records} == fingerprints
