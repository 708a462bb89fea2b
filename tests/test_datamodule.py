import hashlib

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torchvision.transforms import Compose, Normalize, ToTensor

from mnist_exp.data.idx import read_idx
from mnist_exp.data.transforms import BatchTransform
from tests.helpers import compose


@pytest.fixture
def datamodule(synthetic):
    cfg = compose(synthetic.overrides())
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    return dm


def test_split_sizes_and_hold_out_is_disjoint_and_seeded(datamodule, synthetic):
    assert len(datamodule.train_set) == 500 and len(datamodule.val_set) == 100 and len(datamodule.test_set) == 200
    train = {bytes(x.numpy()) for x in datamodule.train_set.images}
    val = {bytes(x.numpy()) for x in datamodule.val_set.images}
    assert not train & val  # synthetic images are unique (random noise)
    cfg = compose(synthetic.overrides())
    again = instantiate(cfg.data)
    again.setup("fit")
    assert torch.equal(again.val_set.labels, datamodule.val_set.labels)


def test_test_split_is_exactly_the_test_files(datamodule, synthetic):
    images = read_idx(synthetic.folder / "t10k-images-idx3-ubyte")
    labels = read_idx(synthetic.folder / "t10k-labels-idx1-ubyte")
    assert np.array_equal(datamodule.test_set.images.numpy(), images)
    assert np.array_equal(datamodule.test_set.labels.numpy(), labels)


def test_a_sweeps_jobs_share_what_they_read_until_the_files_change(datamodule, synthetic):
    """A second data module on the same files (the next job of a sweep) uses the tensors already read; a
    file written since is read again."""
    again = instantiate(compose(synthetic.overrides()).data)
    again.setup()
    assert (again.train_set, again.val_set, again.test_set) == (
        datamodule.train_set,
        datamodule.val_set,
        datamodule.test_set,
    )  # (the same objects: TensorBatches compare by identity)
    another_split = instantiate(compose([*synthetic.overrides(), "data.split_seed=1"]).data)
    another_split.setup("fit")
    assert not torch.equal(another_split.val_set.labels, datamodule.val_set.labels)
    images_file = synthetic.folder / "t10k-images-idx3-ubyte"
    raw = bytearray(images_file.read_bytes())
    raw[-1] ^= 0xFF  # the last pixel of the last test digit
    images_file.write_bytes(bytes(raw))
    checksum = f"data.files.test_images.sha256={hashlib.sha256(raw).hexdigest()}"
    changed = instantiate(compose([*synthetic.overrides(), checksum]).data)
    changed.setup("test")
    assert changed.test_set is not datamodule.test_set
    assert changed.test_set.images[-1, -1, -1] == datamodule.test_set.images[-1, -1, -1] ^ 0xFF
    assert torch.equal(changed.test_set.images[:-1], datamodule.test_set.images[:-1])


def test_train_loader_yields_every_sample_once_per_epoch_in_batches(datamodule):
    datamodule.batch_size = 64
    batches = list(datamodule.train_dataloader())
    assert [len(y) for _, y in batches] == [64] * 7 + [52]
    seen = torch.cat([x.reshape(len(x), -1) for x, _ in batches])
    assert sorted(map(bytes, seen.numpy())) == sorted(map(bytes, datamodule.train_set.images.reshape(500, -1).numpy()))
    assert batches[0][0].dtype == torch.uint8


def test_batch_transform_matches_torchvision_to_tensor_and_normalize(datamodule):
    images, _ = next(iter(datamodule.test_dataloader()))
    ours = BatchTransform(0.5, 0.5)(images)
    reference = Compose([ToTensor(), Normalize((0.5,), (0.5,))])
    theirs = torch.stack([reference(image.numpy()) for image in images])
    assert ours.shape == theirs.shape == (len(images), 1, 28, 28)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_val_size_too_large_is_a_clear_error(synthetic):
    cfg = compose([*synthetic.overrides(), "data.val_size=600"])
    with pytest.raises(
        Exception, match=r"data.val_size must be smaller than the 600 training images \(data.train_size\), got 600"
    ):
        instantiate(cfg.data)  # the data module's own rule, before any file is read
    cfg = compose([*synthetic.overrides(), "data.val_size=600", "~data.train_size"])
    dm = instantiate(cfg.data)  # without train_size it is found when the files are read
    with pytest.raises(ValueError, match="data.val_size=600 must be smaller than the 600 training images"):
        dm.setup("fit")
