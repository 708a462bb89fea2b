"""LightningDataModule for MNIST-like IDX datasets, held in memory as uint8 tensors.

Each split is one tensor, kept on the training device when it is a GPU with room for it;
a batch is a slice of a shuffled index (no per-item Python work, no collation), each rank
taking its own shard. Batches stay uint8: the LightningModule's input transform turns them
into normalized (and, for training, augmented) floats on the device.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from mnist_exp.data.idx import read_idx
from mnist_exp.data.sampler import ShardedBatchSampler
from mnist_exp.data.sources import ensure_files, file_identity
from mnist_exp.errors import ConfigError, is_int, require

ROLES = ("train_images", "train_labels", "test_images", "test_labels")



class TensorBatches(Dataset):
    """Images and labels indexed by a tensor of indices at once: `dataset[torch.tensor([3, 1, 4])]` is a batch."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        index = torch.as_tensor(index).to(self.images.device, non_blocking=True)
        return self.images[index], self.labels[index]

    def to(self, device: torch.device) -> "TensorBatches":
        return TensorBatches(self.images.to(device), self.labels.to(device))

    @property
    def nbytes(self) -> int:
        return self.images.nbytes + self.labels.nbytes


class ResumableLoader(DataLoader):
    """A DataLoader over a ShardedBatchSampler that knows its place in the epoch: a run resumed from a
    mid-epoch checkpoint carries on with the next batch of the same shuffled order, not the epoch's start.
    (Lightning's own saving of loader state is skipped when the loader was built before the checkpoint
    was restored, as `trainer.estimated_stepping_batches` does; the data module carries it instead.)"""

    batches_done = 0

    def __iter__(self):
        self.batches_done = self.sampler.first_batch()
        for batch in super().__iter__():
            self.batches_done += 1  # Lightning does not prefetch from a loader with a length
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.resume(state["epoch"], state["batches_done"])


def load_split(folder: Path, images_file: str, labels_file: str, num_classes: int, reader: Callable = read_idx,
               channels: int = 1, image_size: int = 28) -> TensorBatches:
    """Images [N, H, W] (one channel) or [N, H, W, C] as uint8, and N labels, as the config says they are."""
    images = torch.from_numpy(np.array(reader(folder / images_file), order="C"))  # a copy torch may write to
    labels = torch.from_numpy(np.asarray(reader(folder / labels_file)).astype("int64"))
    expected = (image_size, image_size) if channels == 1 else (image_size, image_size, channels)
    if tuple(images.shape[1:]) != expected or images.dtype != torch.uint8 or labels.dim() != 1 or len(images) != len(labels):
        shape = "N x " + " x ".join(map(str, expected))
        raise ConfigError(
            f"{folder}: {images_file} holds {images.dtype} {tuple(images.shape)} and {labels_file} {tuple(labels.shape)}; "
            f"data.channels={channels} and data.image_size={image_size} say uint8 {shape} images with N labels"
        )
    if channels > 1:
        images = images.permute(0, 3, 1, 2).contiguous()  # [N, C, H, W], as the model takes them
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ConfigError(
            f"{folder}: {labels_file} has labels {int(labels.min())}..{int(labels.max())}, outside 0..{num_classes - 1} "
            f"(data.num_classes={num_classes})"
        )
    return TensorBatches(images, labels)


_shared: dict[tuple, Any] = {}  # what DigitsDataModule.setup read and split in this process, oldest first


def shared(key: tuple, make: Callable[[], Any]) -> Any:
    """make()'s result, kept for the next data module asking with the same key: speed, shared across a sweep's
    jobs in one process (the training split read and split again: 0.1 s a job). Four at most (two datasets'
    fit and test splits). The tensors are shared, so nothing writes to them: batches are new tensors, and a
    move to a device makes copies."""
    if key not in _shared:
        _shared[key] = make()
        while len(_shared) > 4:
            del _shared[next(iter(_shared))]
    return _shared[key]


def reader_key(reader: Callable) -> Hashable:
    """A partial (`_partial_: true` makes a new one for every job) by what it calls with what; else the reader."""
    if not isinstance(reader, functools.partial):
        return reader
    key = (reader.func, reader.args, tuple(sorted(reader.keywords.items())))
    try:
        hash(key)
    except TypeError:  # unhashable arguments: shared only by this very reader (a partial hashes as itself)
        return reader
    return key


class DigitsDataModule(pl.LightningDataModule):
    def __init__(
        self,
        name: str,
        files: Mapping[str, Mapping[str, str]],
        sources: Sequence,
        data_dir: str,
        num_classes: int = 10,
        channels: int = 1,
        image_size: int = 28,
        reader: Callable = read_idx,
        train_size: int | None = None,
        val_size: int = 5000,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 200,
        seed: int = 0,
        on_device: bool = True,
        num_workers: int = 0,
    ):
        super().__init__()
        missing = [role for role in ROLES if role not in files]
        if missing:
            raise ConfigError(f"data.files is missing {', '.join(missing)} (needs {', '.join(ROLES)})")
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size), ("val_size", val_size),
                           ("num_classes", num_classes), ("channels", channels), ("image_size", image_size)):
            require(is_int(value) and value >= 1, f"data.{key}", "an integer >= 1", value)
        require(is_int(num_workers) and num_workers >= 0, "data.num_workers", "an integer >= 0", num_workers)
        if train_size is not None:
            require(is_int(train_size) and train_size > val_size, "data.val_size",
                    f"smaller than the {train_size} training images (data.train_size)", val_size)
        self.name, self.files, self.sources, self.data_dir = name, files, list(sources), Path(data_dir)
        self.num_classes, self.channels, self.image_size, self.reader = num_classes, channels, image_size, reader
        self.train_size, self.val_size, self.split_seed = train_size, val_size, split_seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.seed, self.on_device, self.num_workers = seed, on_device, num_workers
        self.train_set = self.val_set = self.test_set = None
        self._verified_folder: Path | None = None
        self._train_loader: ResumableLoader | None = None
        self._resume_position: dict | None = None  # from a checkpoint, until the train loader uses it

    def _folder(self) -> Path:
        """The dataset's folder, fetched and verified once per process (Lightning calls prepare_data and
        setup several times per run; hashing 55 MB each time only delays start-up)."""
        if self._verified_folder is None:
            checksums = {spec["file"]: spec["sha256"] for spec in self.files.values()}
            self._verified_folder = ensure_files(self.name, checksums, self.sources, self.data_dir)
        return self._verified_folder

    def prepare_data(self) -> None:
        self._folder()

    def setup(self, stage: str | None = None) -> None:
        """The splits, read or taken from the previous job of a sweep in this process (`shared`)."""
        folder = self._folder()
        if stage in (None, "fit", "validate") and self.train_set is None:
            key = (self._files_key(folder, "train"), self.train_size, self.val_size, self.split_seed)
            self.train_set, self.val_set = shared(key, lambda: self._split(self._load(folder, "train")))
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = shared(self._files_key(folder, "test"), lambda: self._load(folder, "test"))
        self._move_to_training_device()

    def _split(self, full: TensorBatches) -> tuple[TensorBatches, TensorBatches]:
        """The training images less a seeded hold-out of val_size, and the hold-out."""
        if self.train_size is not None and len(full) != self.train_size:
            raise ConfigError(
                f"data.train_size is {self.train_size} but {self.files['train_images']['file']} holds {len(full)} images"
            )
        if self.val_size >= len(full):
            raise ConfigError(f"data.val_size={self.val_size} must be smaller than the {len(full)} training images")
        order = torch.randperm(len(full), generator=torch.Generator().manual_seed(self.split_seed))
        val_index, train_index = order[: self.val_size], order[self.val_size :]
        return (
            TensorBatches(full.images[train_index], full.labels[train_index]),
            TensorBatches(full.images[val_index], full.labels[val_index]),
        )

    def _load(self, folder: Path, split: str) -> TensorBatches:
        return load_split(folder, self.files[f"{split}_images"]["file"], self.files[f"{split}_labels"]["file"],
                          self.num_classes, self.reader, self.channels, self.image_size)

    def _files_key(self, folder: Path, split: str) -> tuple:
        """What a split read from `folder` depends on: its two files as they are now, and how they are read."""
        files = (folder / self.files[f"{split}_images"]["file"], folder / self.files[f"{split}_labels"]["file"])
        return (*map(file_identity, files), self.num_classes, self.channels, self.image_size, reader_key(self.reader))

    def _move_to_training_device(self) -> None:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if not self.on_device or device.type != "cuda":
            return
        splits = [name for name in ("train_set", "val_set", "test_set") if getattr(self, name) is not None]
        needed = sum(getattr(self, name).nbytes for name in splits)
        free, _ = torch.cuda.mem_get_info(device)
        if needed > free // 4:  # leave the model and activations plenty of room
            return
        for name in splits:
            setattr(self, name, getattr(self, name).to(device))

    def _loader(self, dataset: TensorBatches, batch_size: int, shuffle: bool) -> DataLoader:
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        batches = ShardedBatchSampler(len(dataset), batch_size, shuffle, self.seed, rank, world_size)
        on_gpu = dataset.images.device.type != "cpu"
        return (ResumableLoader if shuffle else DataLoader)(
            dataset,
            sampler=batches,
            batch_size=None,  # the sampler yields whole batches of indices
            num_workers=0 if on_gpu else self.num_workers,
            persistent_workers=self.num_workers > 0 and not on_gpu,
            generator=torch.Generator(),  # its seed draw leaves the global random stream to the model
        )

    def train_dataloader(self) -> DataLoader:
        self._train_loader = self._loader(self.train_set, self.batch_size, shuffle=True)
        if self._resume_position is not None:
            self._train_loader.load_state_dict(self._resume_position)
        return self._train_loader

    def state_dict(self) -> dict:
        """Saved in checkpoints: where training is in the current epoch."""
        return {"train_position": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self._resume_position = state.get("train_position")
        if self._resume_position is not None and self._train_loader is not None:
            self._train_loader.load_state_dict(self._resume_position)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

