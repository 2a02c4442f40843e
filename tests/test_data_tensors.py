"""Your own data: from_tensors and npz:PATH go through the same preparation as any data set."""

import numpy as np
import pytest
import torch

from afbench import data
from afbench.data import DataError


def _arrays(seed=0, n_train=40, n_test=10, shape=(3, 4, 4), classes=3, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    make = lambda n: (rng.integers(0, 256, (n, *shape)).astype(dtype) if dtype == np.uint8
                      else rng.random((n, *shape)).astype(dtype))
    return make(n_train), np.arange(n_train) % classes, make(n_test), np.arange(n_test) % classes


def test_uint8_images_prepare_with_training_statistics():
    x_train, y_train, x_test, y_test = _arrays()
    raw = data.from_tensors(x_train, y_train, x_test, y_test, name="mine", classes=("a", "b", "c"))
    prepared = data.prepare(raw)
    assert prepared.classes == ("a", "b", "c") and prepared.input_shape == (3, 4, 4)
    # reference: numpy, per channel, training split only, in [0, 1] units
    train = x_train.astype(np.float64) / 255
    mean, std = train.mean(axis=(0, 2, 3)), train.std(axis=(0, 2, 3), ddof=1)
    expected = (x_test / 255 - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(prepared.test.x.numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(prepared.mean, mean, rtol=1e-5)


def test_float_features_and_torch_tensors_keep_their_values():
    x_train, y_train, x_test, y_test = _arrays(shape=(5,), dtype=np.float64)
    raw = data.from_tensors(torch.from_numpy(x_train), torch.from_numpy(y_train), x_test, y_test,
                            name="features")
    assert raw.train_x.shape == (40, 5, 1, 1) and raw.classes == ("0", "1", "2")
    prepared = data.prepare(raw, standardize=False)
    np.testing.assert_allclose(prepared.train.x.numpy()[:, :, 0, 0], x_train, rtol=1e-6)
    standard = data.prepare(raw)  # each feature is a channel: standardised on its own
    np.testing.assert_allclose(standard.train.x.numpy().std(axis=0, ddof=1).ravel(), np.ones(5), rtol=1e-4)


def test_single_channel_images_get_a_channel_axis():
    x_train, y_train, x_test, y_test = _arrays(shape=(6, 6))
    assert data.from_tensors(x_train, y_train, x_test, y_test).image_shape == (1, 6, 6)


@pytest.mark.parametrize("change,message", [
    (lambda a: (a[0][:, 0, 0, 0], *a[1:]), "shape .40,.: give"),
    (lambda a: (a[0][..., None], *a[1:]), "give .N, C, H, W. images"),
    (lambda a: (a[0], a[1][:-1], *a[2:]), "39 labels for 40 samples"),
    (lambda a: (a[0], a[1], a[2][:, :, :2], a[3]), "same sample shape"),
    (lambda a: (a[0], a[1] * 0, a[2], a[3] * 0), "at least 2"),
    (lambda a: (a[0], a[1] - 1, a[2], a[3]), "label -1 is outside 0..2"),
    (lambda a: (a[0], a[1] + 0.5, a[2], a[3]), "integer class indices"),
    (lambda a: (a[0].astype(np.float32) * np.nan, *a[1:]), "NaN"),
])
def test_bad_arrays_are_clear_errors(change, message):
    args = change(_arrays())
    with pytest.raises(DataError, match=message):
        data.from_tensors(*args)


def test_labels_beyond_the_given_classes_are_refused():
    with pytest.raises(DataError, match="label 2 is outside 0..1 .2 classes given"):
        data.from_tensors(*_arrays(), classes=("a", "b"))


def test_npz_path_loads_like_any_data_set(tmp_path):
    x_train, y_train, x_test, y_test = _arrays()
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    raw = data.load(f"npz:{path}")
    assert raw.name == "npz:mine.npz" and np.array_equal(raw.test_x, x_test) and np.array_equal(raw.train_y, y_train)
    np.savez(tmp_path / "half.npz", x_train=x_train, y_train=y_train)
    with pytest.raises(DataError, match="lacks x_test, y_test"):
        data.load(f"npz:{tmp_path / 'half.npz'}")
    with pytest.raises(DataError, match="does not exist"):
        data.load(f"npz:{tmp_path / 'none.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read"):
        data.load(f"npz:{tmp_path / 'junk.npz'}")
