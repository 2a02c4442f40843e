"""Test isolation: no network, a private cache, and the shared real data when present."""

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("AFBENCH_OFFLINE", "1")  # tests never touch the network
    mp.setenv("AFBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("afbench-cache")))
    mp.delenv("AFBENCH_DATA_DIR", raising=False)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def digits():
    """The embedded digits, prepared: the small real data set most engine tests train on."""
    from afbench import data

    return data.prepare(data.load("digits"))


@pytest.fixture
def mnist_dir() -> Path:
    path = SHARED_DATA / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("real MNIST not present at ../shared/data/mnist")
    return path


@pytest.fixture
def cifar10_jpeg() -> Path:
    path = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not path.exists():
        pytest.skip("CIFAR-10 JPEG copy not present at ../shared/data")
    return path
