"""Every option of every config group composes and instantiates."""

import inspect
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from mnist_exp import CONFIG_DIR
from mnist_exp.models import DigitClassifier
from tests.helpers import compose

GROUPS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "paths"))
OPTIONS = [(group, f.stem) for group in GROUPS for f in sorted((CONFIG_DIR / group).glob("*.yaml"))]


def test_every_documented_group_exists():
    for group in ("data", "model", "optimizer", "scheduler", "transforms", "trainer", "logger", "callbacks"):
        assert any(g == group for g, _ in OPTIONS), group


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_instantiates(group, option, synthetic, tmp_path):
    data = [] if group == "data" else synthetic.overrides()
    log_dir = f"paths.log_dir={tmp_path / 'outputs'}"  # logger=mlflow makes its local store there when built
    cfg = compose([*data, f"{group}={option}", log_dir], run_dir=str(tmp_path / "run"))
    if group == "data":
        dm = instantiate(cfg.data)
        assert dm.name == cfg.data.name and len(dm.sources) >= 1
        return
    net = instantiate(cfg.model)
    optimizer = instantiate(cfg.optimizer)
    assert isinstance(optimizer, partial)
    scheduler = instantiate(cfg.scheduler) if cfg.scheduler else None
    DigitClassifier(net, optimizer, scheduler)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    loggers = [instantiate(c) for c in cfg.logger.values()]
    trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers, accelerator="cpu", max_epochs=1, precision="32-true"
    )
    assert isinstance(trainer, pl.Trainer)
    transforms = instantiate(cfg.transforms)
    batch = transforms(torch.zeros(4, 28, 28, dtype=torch.uint8), augment=True)
    assert net(batch).shape == (4, 10)
    if scheduler:  # builds on a real optimizer (the CLI tests run one through a fit)
        factory = scheduler["scheduler"]
        extra = {"total_steps": 10} if "total_steps" in inspect.signature(factory.func).parameters else {}
        built = factory(torch.optim.SGD(net.parameters(), lr=0.1), **extra)
        assert isinstance(built, torch.optim.lr_scheduler.LRScheduler)
        assert scheduler["interval"] in ("step", "epoch")


def test_default_recipe_is_adam_with_one_cycle_and_tutorial_normalization():
    cfg = compose()
    assert (
        cfg.scheduler.scheduler._target_.endswith("OneCycleLR") and cfg.scheduler.scheduler.max_lr == cfg.optimizer.lr
    )
    assert cfg.optimizer._target_ == "torch.optim.Adam"
    assert not compose(["scheduler=none"]).scheduler
    assert cfg.transforms.mean == 0.5 and cfg.transforms.std == 0.5


def test_tutorial_preset_is_the_seed_recipe():
    cfg = compose(["experiment=tutorial"])
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 0.001 and not cfg.scheduler
    assert cfg.data.batch_size == 64 and cfg.transforms.augment is None
    assert (cfg.transforms.mean, cfg.transforms.std) == (0.5, 0.5)
    model = cfg.model
    assert (model.channels, model.hidden, model.kernel_size, model.dropout) == (16, 128, 3, 0.0)
    assert not model.batch_norm and model.convs_per_block == 1
    assert cfg.module.label_smoothing == 0.0 and cfg.module.tta_shifts == 0 and cfg.trainer.precision == "auto"


def test_presets_apply_on_top_of_the_defaults_and_yield_to_the_command_line():
    cfg = compose(["experiment=best", "trainer.max_epochs=1"])
    assert cfg.transforms.augment._target_ == "kornia.augmentation.RandomAffine"
    assert cfg.model.batch_norm and cfg.module.tta_shifts == 1 and cfg.trainer.max_epochs == 1
