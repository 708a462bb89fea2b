"""What mnist_exp/compat/ relies on in other libraries' insides, pinned: an upgrade that moves one of
these private names fails here, by name, before it fails a run."""

from __future__ import annotations

import os

from omegaconf import OmegaConf

from mnist_exp import CONFIG_DIR
from mnist_exp.compat.hydra import group_option_targets
from mnist_exp.compat.omegaconf import forget


def test_hydra_config_repository_lists_a_groups_options_and_their_targets(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text("_target_: my_models.Mine\n")
    sources = [
        {"provider": "main", "schema": "file", "path": str(CONFIG_DIR)},
        {"provider": "user", "schema": "file", "path": str(tmp_path)},
    ]
    assert group_option_targets("model", sources) == {"mnist_exp.models.CNN", "my_models.Mine"}


def test_lightning_ddp_launcher_is_the_subprocess_script_launcher():
    from pytorch_lightning import Trainer

    from mnist_exp.compat.lightning import restarts_command_line

    ddp = Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False)
    single = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    assert restarts_command_line(ddp) and not restarts_command_line(single)


def test_summary_writer_reopens_its_file_writer_after_close(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from mnist_exp.compat.tensorboard import file_writer

    writer = SummaryWriter(str(tmp_path))
    writer.close()
    file_writer(writer).add_summary(__import__("tensorboard").compat.proto.summary_pb2.Summary())
    writer.close()
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_omegaconf_resolver_cache_is_forgotten_per_resolver():
    calls = []
    OmegaConf.register_new_resolver("counted_for_compat_test", lambda: calls.append(1) or len(calls), use_cache=True)
    config = OmegaConf.create({"a": "${counted_for_compat_test:}"})
    assert config.a == 1 and config.a == 1  # cached
    forget(config, "counted_for_compat_test")
    assert config.a == 2


def test_lightning_rich_progress_bar_names_its_epoch_label_as_we_override_it():
    from pytorch_lightning import Trainer
    from pytorch_lightning.callbacks import RichProgressBar

    from mnist_exp.compat.lightning import ProgressBar

    assert callable(getattr(RichProgressBar, "_get_train_description", None))  # the private name we override
    bar = ProgressBar()
    trainer = Trainer(accelerator="cpu", max_epochs=5, logger=False, enable_checkpointing=False, callbacks=[bar])
    bar.setup(trainer, None, "fit")
    assert bar._get_train_description(0).strip() == "Epoch 1/5"  # counted from 1, as the epoch lines are


def test_seed_everything_leaves_the_generators_and_environment_as_lightnings_does(monkeypatch):
    import random

    import numpy
    import torch
    from lightning_fabric.utilities.seed import seed_everything as lightnings

    from mnist_exp.compat.seed import seed_everything

    def state() -> tuple:
        drawn = (random.random(), float(numpy.random.rand()), float(torch.rand(1)))
        return drawn, os.environ.get("PL_GLOBAL_SEED"), os.environ.get("PL_SEED_WORKERS")

    for variable in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):
        monkeypatch.delenv(variable, raising=False)
    lightnings(1234, workers=True, verbose=False)
    theirs = state()
    for variable in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):
        monkeypatch.delenv(variable, raising=False)
    seed_everything(1234, workers=True)
    assert state() == theirs
