"""The in-memory data path: exact data, each sample once per epoch, disjoint rank shards, per-sample augmentation."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from mnist_exp.data.idx import read_idx
from mnist_exp.data.sampler import ShardedBatchSampler
from tests.helpers import compose


def test_train_and_val_batches_are_exactly_the_file_images_per_index(synthetic):
    dm = instantiate(compose(synthetic.overrides()).data)
    dm.setup("fit")
    images = read_idx(synthetic.folder / "train-images-idx3-ubyte")
    labels = read_idx(synthetic.folder / "train-labels-idx1-ubyte")
    order = torch.randperm(600, generator=torch.Generator().manual_seed(dm.split_seed)).numpy()
    val_index, train_index = order[:100], order[100:]
    for split, index in ((dm.train_set, train_index), (dm.val_set, val_index)):
        for batch in ShardedBatchSampler(len(split), 64, shuffle=True, seed=3):
            x, y = split[batch]
            assert np.array_equal(x.numpy(), images[index[batch.numpy()]])
            assert np.array_equal(y.numpy(), labels[index[batch.numpy()]])


@pytest.mark.parametrize("size", [500, 501])
def test_every_index_once_per_epoch_and_a_new_order_each_epoch(size):
    sampler = ShardedBatchSampler(size, 64, shuffle=True, seed=0)
    first = torch.cat(list(sampler))
    sampler.set_epoch(1)
    second = torch.cat(list(sampler))
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(size))
    assert not torch.equal(first, second)
    assert len(sampler) == len(list(sampler))
    sampler.set_epoch(0)
    assert torch.equal(torch.cat(list(sampler)), first)  # same seed and epoch, same order


@pytest.mark.parametrize("size", [1000, 1001])
def test_two_rank_training_shards_are_disjoint_complete_and_equal_length(size):
    ranks = [ShardedBatchSampler(size, 32, shuffle=True, seed=7, rank=r, world_size=2) for r in (0, 1)]
    shards = [torch.cat(list(s)).tolist() for s in ranks]
    assert len(shards[0]) == len(shards[1]) == -(-size // 2)
    assert set(shards[0]) | set(shards[1]) == set(range(size))
    overlap = set(shards[0]) & set(shards[1])
    assert len(overlap) == (size % 2)  # only the one padding index repeats, as DistributedSampler does
    assert len(ranks[0]) == len(ranks[1])


def test_two_rank_evaluation_shards_score_each_sample_exactly_once():
    ranks = [ShardedBatchSampler(1001, 100, shuffle=False, rank=r, world_size=2) for r in (0, 1)]
    shards = [torch.cat(list(s)).tolist() for s in ranks]
    assert sorted(shards[0] + shards[1]) == list(range(1001))
    assert [len(s) for s in ranks] == [len(list(s)) for s in ranks]


def test_augmentation_draws_different_parameters_for_each_sample(synthetic):
    transform = instantiate(compose(["transforms=augment"]).transforms)
    image = torch.from_numpy(read_idx(synthetic.folder / "t10k-images-idx3-ubyte")[:1].copy())
    batch = image.repeat(8, 1, 1)  # eight copies of one image
    torch.manual_seed(0)
    out = transform(batch, augment=True)
    assert out.shape == (8, 1, 28, 28)
    distinct = {tuple(x.flatten().round(decimals=4).tolist()) for x in out}
    assert len(distinct) == 8
    assert torch.equal(transform(batch, augment=False), transform(batch[:1], augment=False).expand(8, 1, 28, 28))


def test_augmentation_at_zero_strength_is_the_identity(synthetic):
    cfg = compose(
        [
            "transforms=augment",
            "transforms.augment.degrees=0",
            "transforms.augment.translate=[0,0]",
            "transforms.augment.scale=[1,1]",
        ]
    )
    transform = instantiate(cfg.transforms)
    batch = torch.from_numpy(read_idx(synthetic.folder / "t10k-images-idx3-ubyte")[:16].copy())
    assert torch.allclose(transform(batch, augment=True), transform(batch, augment=False), atol=1e-5)
