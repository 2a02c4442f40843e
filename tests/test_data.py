"""Data sets: formats checked on generated files (good and corrupt), real data when present."""

import gzip
import io
import os
import pickle
import struct
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from afbench import data
from afbench.data.formats import DataError, parse_idx
from afbench.data.prep import random_crop_flip
from afbench.errors import UnknownNameError

IDX_NAMES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
             "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake_mnist(folder: Path, n_train=30, n_test=10, compress=True, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {"train_x": rng.integers(0, 256, (n_train, 28, 28)), "train_y": np.arange(n_train) % 10,
              "test_x": rng.integers(0, 256, (n_test, 28, 28)), "test_y": np.arange(n_test) % 10}
    folder.mkdir(parents=True, exist_ok=True)
    for part, stem in IDX_NAMES.items():
        raw = idx_bytes(arrays[part])
        if compress:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


# ---- IDX ---------------------------------------------------------------------------

def test_parse_idx_round_trip():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(array), "x", 3), array)


@pytest.mark.parametrize("mangle,message", [
    (lambda raw: b"\x01\x02" + raw[2:], "magic"),
    (lambda raw: raw[:-5], "truncated"),
    (lambda raw: raw + b"\x00", "trailing"),
    (lambda raw: raw[:2] + b"\x0d" + raw[3:], "type 0x0d"),
])
def test_parse_idx_rejects_corrupt_files(mangle, message):
    raw = idx_bytes(np.zeros((2, 3, 4)))
    with pytest.raises(DataError, match=message):
        parse_idx(mangle(raw), "bad-file", 3)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("layout", ["", "MNIST/raw", "mnist"])
def test_mnist_loads_from_every_layout(tmp_path, compress, layout):
    arrays = write_fake_mnist(tmp_path / layout, compress=compress)
    loaded = data.load("mnist", tmp_path, download=False, verify=False)
    assert loaded.train_x.shape == (30, 1, 28, 28) and loaded.test_x.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(loaded.train_x[:, 0], arrays["train_x"])
    np.testing.assert_array_equal(loaded.test_y, arrays["test_y"])


def test_mnist_checksum_rejects_wrong_content(tmp_path):
    write_fake_mnist(tmp_path)
    with pytest.raises(DataError, match="content md5 .* not the published"):
        data.load("mnist", tmp_path, download=False, verify=True)


def test_corrupt_gzip_names_the_file(tmp_path):
    write_fake_mnist(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        data.load("mnist", tmp_path, download=False, verify=False)


def test_labels_out_of_range_are_refused(tmp_path):
    write_fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(10, 12))))
    with pytest.raises(DataError, match="labels outside 0..9"):
        data.load("mnist", tmp_path, download=False, verify=False)


def test_image_label_count_mismatch_is_refused(tmp_path):
    write_fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(9))))
    with pytest.raises(DataError, match="10 images but 9 labels"):
        data.load("mnist", tmp_path, download=False, verify=False)


def test_missing_data_error_says_where_and_how(tmp_path):
    with pytest.raises(DataError) as err:
        data.load("mnist", tmp_path, download=False)
    text = str(err.value)
    for needed in ("train-images-idx3-ubyte.gz", str(tmp_path), "https://", "--data-dir", "AFBENCH_DATA_DIR"):
        assert needed in text
    assert text.count("https://") == 2  # each mirror folder once, not 4 files x 2 mirrors


def test_a_failed_download_gives_each_mirrors_first_words(tmp_path, monkeypatch):
    import pooch

    from afbench.data import sources

    nested = "HTTPSConnectionPool(host='x', port=443): Max retries exceeded (Caused by " + "NameResolutionError " * 20
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: (_ for _ in ()).throw(OSError(nested + "\nmore")))
    monkeypatch.setattr(sources, "offline", lambda: False)
    with pytest.raises(DataError) as err:
        sources._download("mnist", ["a.gz"], ("https://one/", "https://two/"), tmp_path)
    text = str(err.value)
    assert "https://one/: HTTPSConnectionPool" in text and "more" not in text and len(text) < 700


def test_offline_never_downloads(tmp_path):
    with pytest.raises(DataError, match="Downloads are off"):
        data.load("mnist", tmp_path, download=True)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_data_dir_env_variable_is_used(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "env")
    monkeypatch.setenv("AFBENCH_DATA_DIR", str(tmp_path / "env"))
    assert len(data.load("mnist", download=False, verify=False).train_y) == 30


def test_cache_is_invalidated_when_the_source_changes(tmp_path):
    write_fake_mnist(tmp_path, seed=1)
    first = data.load("mnist", tmp_path, download=False, verify=False)
    again = data.load("mnist", tmp_path, download=False, verify=False)
    np.testing.assert_array_equal(first.train_x, again.train_x)
    time.sleep(0.01)
    arrays = write_fake_mnist(tmp_path, seed=2)  # same names, new content
    changed = data.load("mnist", tmp_path, download=False, verify=False)
    np.testing.assert_array_equal(changed.train_x[:, 0], arrays["train_x"])


def test_unknown_data_set_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="Did you mean 'mnist'.*cifar10"):
        data.load("minst")


# ---- CIFAR -------------------------------------------------------------------------

def cifar_batch(n, label_key=b"labels", seed=0, extra=None):
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: list(rng.integers(0, 10, n))}
    batch.update(extra or {})
    return pickle.dumps(batch, protocol=2)


def write_fake_cifar10(folder: Path, per_batch=4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(cifar_batch(per_batch, seed=i))
    (folder / "test_batch").write_bytes(cifar_batch(per_batch, seed=9))
    names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                  "truck")]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))


def test_cifar10_from_folder_and_from_archive(tmp_path):
    write_fake_cifar10(tmp_path / "src" / "cifar-10-batches-py")
    from_folder = data.load("cifar10", tmp_path / "src", download=False)
    assert from_folder.train_x.shape == (20, 3, 32, 32) and from_folder.classes[0] == "airplane"
    expected = pickle.loads(cifar_batch(4, seed=1))[b"data"].reshape(4, 3, 32, 32)
    np.testing.assert_array_equal(from_folder.train_x[:4], expected)  # R, G, B planes
    archive_dir = tmp_path / "arch"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    from_archive = data.load("cifar10", archive_dir, download=False)
    np.testing.assert_array_equal(from_archive.train_x, from_folder.train_x)


def test_cifar100_fine_and_coarse_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    coarse = {b"coarse_labels": [1, 2, 3, 4]}
    (folder / "train").write_bytes(cifar_batch(4, b"fine_labels", extra=coarse))
    (folder / "test").write_bytes(cifar_batch(4, b"fine_labels", seed=3, extra=coarse))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"c%d" % i for i in range(100)],
                                                b"coarse_label_names": [b"s%d" % i for i in range(20)]}))
    fine = data.load("cifar100", tmp_path, download=False)
    assert len(fine.classes) == 100
    assert data.load("cifar100", tmp_path, download=False, coarse=True).train_y.tolist() == [1, 2, 3, 4]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_cifar_pickle_never_runs(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar10(folder)
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match="refusing to unpickle 'posix.system'|refusing to unpickle 'os.system'"):
        data.load("cifar10", tmp_path, download=False)
    assert not marker.exists()


def test_truncated_cifar_batch_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar10(folder)
    (folder / "test_batch").write_bytes(cifar_batch(4)[:500])
    with pytest.raises(DataError, match="test_batch"):
        data.load("cifar10", tmp_path, download=False)


# ---- image folders -----------------------------------------------------------------

def png(color, size=(6, 5), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, raw in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(raw)
    return root


SPLIT_TREE = {"train/cat/1.png": png((255, 0, 0)), "train/cat/2.png": png((250, 0, 0)),
              "train/dog/1.png": png((0, 0, 255)), "test/cat/3.png": png((255, 0, 0)),
              "test/dog/2.png": png((0, 0, 250))}


def test_imagefolder_with_splits(tmp_path):
    root = make_tree(tmp_path / "tree", SPLIT_TREE)
    loaded = data.load(f"imagefolder:{root}")
    assert loaded.classes == ("cat", "dog")
    assert loaded.train_x.shape == (3, 3, 5, 6) and loaded.test_y.tolist() == [0, 1]
    assert loaded.train_x[0, :, 0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_imagefolder_archives_with_a_wrapping_folder(tmp_path, kind):
    root = make_tree(tmp_path / "tree", SPLIT_TREE)
    archive = tmp_path / f"set.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as z:
            for rel in SPLIT_TREE:
                z.write(root / rel, f"wrapper/{rel}")
    else:
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(root, arcname="wrapper")
    loaded = data.load(f"imagefolder:{archive}")
    assert loaded.classes == ("cat", "dog") and len(loaded.train_y) == 3 and len(loaded.test_y) == 2


def test_imagefolder_without_splits_makes_a_stratified_test_split(tmp_path):
    files = {f"{cls}/{i}.png": png((i, i, i), mode="RGB") for cls in ("a", "b") for i in range(10)}
    loaded = data.load(f"imagefolder:{make_tree(tmp_path / 't', files)}")
    assert np.bincount(loaded.test_y).tolist() == [2, 2] and len(loaded.train_y) == 16


def test_imagefolder_grey_images_keep_one_channel(tmp_path):
    files = {f"{c}/{i}.png": png(100 + i, mode="L") for c in "ab" for i in range(3)}
    assert data.load(f"imagefolder:{make_tree(tmp_path / 'g', files)}").image_shape == (1, 5, 6)


def test_imagefolder_mixed_sizes_need_an_image_size(tmp_path):
    files = {"a/1.png": png((1, 2, 3), size=(8, 8)), "b/1.png": png((1, 2, 3), size=(10, 6)),
             "a/2.png": png((1, 2, 3), size=(8, 8)), "b/2.png": png((1, 2, 3), size=(8, 8))}
    root = make_tree(tmp_path / "m", files)
    with pytest.raises(DataError, match="--image-size"):
        data.load(f"imagefolder:{root}")
    assert data.load(f"imagefolder:{root}", image_size=4).image_shape == (3, 4, 4)


def test_imagefolder_corrupt_image_is_named(tmp_path):
    root = make_tree(tmp_path / "c", {**SPLIT_TREE, "train/dog/bad.png": b"not an image"})
    with pytest.raises(DataError, match="bad.png"):
        data.load(f"imagefolder:{root}")


# ---- preparation -------------------------------------------------------------------

def test_standardisation_uses_training_statistics_only():
    raw = data.load("digits")
    prepared = data.prepare(raw)
    x = prepared.train.x
    assert x.mean().item() == pytest.approx(0.0, abs=1e-5) and x.std().item() == pytest.approx(1.0, abs=1e-3)
    expected_mean = raw.train_x.astype(np.float64).mean() / 255
    assert prepared.mean[0] == pytest.approx(expected_mean, rel=1e-5)
    assert prepared.test.x.mean().item() != pytest.approx(0.0, abs=1e-5)  # test is only transformed


def test_s2_resplit_is_seven_two_one_and_reproducible():
    raw = data.load("digits")
    a, b = data.prepare(raw, split="s2", split_seed=3), data.prepare(raw, split="s2", split_seed=3)
    total = len(raw.train_y) + len(raw.test_y)
    assert (len(a.train), len(a.test), len(a.valid)) == (round(0.7 * total), round(0.2 * total),
                                                          total - round(0.7 * total) - round(0.2 * total))
    assert torch.equal(a.valid.y, b.valid.y) and torch.equal(a.train.x, b.train.x)
    c = data.prepare(raw, split="s2", split_seed=4)
    assert not torch.equal(a.train.y, c.train.y)


def test_validation_fraction_is_carved_from_train():
    raw = data.load("digits")
    prepared = data.prepare(raw, valid_fraction=0.1, split_seed=0)
    assert len(prepared.valid) == round(0.1 * 1437) and len(prepared.train) + len(prepared.valid) == 1437
    assert len(prepared.test) == 360


@pytest.mark.parametrize("kind", ["zca", "pca"])
def test_whitening_matches_the_eigen_formula(kind):
    # Whitened covariance must be V diag(l / (l + eps)) V^T (ZCA) or diag(l / (l + eps))
    # (PCA), with (l, V) the eigen-decomposition of the centred training covariance.
    raw, eps = data.load("digits"), 0.1
    plain = data.prepare(raw).train.x.flatten(1).double().numpy()
    centred = plain - plain.mean(axis=0)
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred / len(centred))
    shrink = np.diag(eigenvalues / (eigenvalues + eps))
    expected = vectors @ shrink @ vectors.T if kind == "zca" else shrink
    white = data.prepare(raw, whitening=kind, whitening_eps=eps).train.x.flatten(1).double().numpy()
    assert np.abs(white.mean(axis=0)).max() < 1e-4
    np.testing.assert_allclose(white.T @ white / len(white), expected, atol=2e-3)


def test_random_crop_flip_returns_crops_of_the_padded_image():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        crops = [padded[i, :, r:r + 5, c:c + 5] for r in range(5) for c in range(5)]
        crops += [crop.flip(-1) for crop in crops]
        assert any(torch.equal(out[i], crop) for crop in crops)


def test_class_counts_add_up():
    prepared = data.prepare(data.load("digits"), valid_fraction=0.2)
    counts = data.class_counts(prepared)
    assert sum(counts["train"]) + sum(counts["valid"]) == 1437 and sum(counts["test"]) == 360


# ---- real data (skipped when ../shared/data is absent) -----------------------------

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # published per-class counts


def test_real_mnist(mnist_dir):
    mnist = data.load("mnist", mnist_dir, download=False, verify=True)
    assert mnist.train_x.shape == (60000, 1, 28, 28) and mnist.test_x.shape == (10000, 1, 28, 28)
    assert np.bincount(mnist.train_y).tolist() == MNIST_TRAIN_COUNTS
    start = time.perf_counter()
    data.load("mnist", mnist_dir, download=False, verify=True)
    assert time.perf_counter() - start < 1.0  # second load comes from the decoded cache


def test_real_fashion_mnist_from_debian():
    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist not installed")
    fashion = data.load("fashion-mnist", download=False, verify=True)
    assert np.bincount(fashion.train_y).tolist() == [6000] * 10
    assert np.bincount(fashion.test_y).tolist() == [1000] * 10


@pytest.mark.slow
def test_real_cifar10_jpeg_copy(cifar10_jpeg):
    cifar = data.load(f"imagefolder:{cifar10_jpeg}")
    assert cifar.train_x.shape == (50000, 3, 32, 32) and cifar.test_x.shape == (10000, 3, 32, 32)
    assert np.bincount(cifar.train_y).tolist() == [5000] * 10
    assert cifar.classes[0] == "airplane" and cifar.classes[-1] == "truck"
