"""Bad configs are refused in one line naming the key, before any data is fetched or file written."""

import sys

import pytest
from hydra.core.global_hydra import GlobalHydra

from mnist_exp import cli
from mnist_exp.lifecycle.checks import ConfigError, check_config
from tests.helpers import compose, run_cli

# (overrides, what the one-line error must say)
BAD = [
    (["model.channels=0"], "model.channels must be an integer >= 1, got 0"),
    (["model.hidden=-5"], "model.hidden must be an integer >= 1, got -5"),
    (["data.batch_size=0"], "data.batch_size must be an integer >= 1, got 0"),
    (["trainer.max_epochs=0"], "trainer.max_epochs must be an integer >= 1 (the run tests what it trained), got 0"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1 is refused by torch.optim.Adam: Invalid learning rate: -0.1"),
    (
        ["optimizer.lr=abc"],
        "optimizer.lr='abc' is refused by torch.optim.Adam: a number is expected (its default is 0.001), not the "
        "text 'abc'",
    ),
    (
        ["optimizer=sgd", "optimizer.weight_decay=-1"],
        "optimizer.weight_decay=-1 is refused by torch.optim.SGD: Invalid weight_decay value: -1",
    ),
    (
        ["scheduler=step", "scheduler.scheduler.step_size=0"],
        "scheduler.scheduler.step_size=0 is refused by torch.optim.lr_scheduler.StepLR: integer modulo by zero",
    ),
    (["model.dropout=1.0"], "model.dropout must be a number in [0, 1), got 1.0"),
    (["model.dropout=-0.2"], "model.dropout must be a number in [0, 1), got -0.2"),
    (
        ["data.val_size=60000"],
        "data.val_size must be smaller than the 60000 training images (data.train_size), got 60000",
    ),
    (
        ["trainer.accelerator=tpuu"],
        "trainer.accelerator='tpuu' is refused by pytorch_lightning.Trainer: You selected an "
        "invalid accelerator name: `accelerator='tpuu'`",
    ),
    (["model.channels=abc"], "model.channels must be an integer >= 1, got 'abc'"),
    (["data.batch_size=2.5"], "data.batch_size must be an integer >= 1, got 2.5"),
    (["model.batch_norm=yes"], "model.batch_norm must be true or false, got 'yes'"),
    (
        ["trainer.precision=8-bit"],
        "trainer.precision='8-bit' is refused by pytorch_lightning.Trainer: Precision '8-bit' is invalid",
    ),
    (["trainer.limit_train_batches=-1"], "invalid value -1 for limit_train_batches"),
    (
        ["experiment=fast", "trainer.limit_val_batches=0.1"],
        "trainer.limit_val_batches=0.1 leaves no batch of the 5 val batches (val images 1000, batch size 200); "
        "give at least 0.2, or a whole number of batches",
    ),
    (["transforms.std=0"], "transforms.std must be a number > 0 or a list of them, got 0"),
    (["module.label_smoothing=1.5"], "module.label_smoothing must be a number in [0, 1), got 1.5"),
    (["test_checkpoint=first"], "test_checkpoint must be best or last, got 'first'"),
    (["model.chanels=32"], "model.chanels: no such config key; did you mean model.channels?"),
    (["trainer.max_epoch=3"], "trainer.max_epoch: no such config key; did you mean trainer.max_epochs?"),
    (["optimizer=adamm"], "optimizer=adamm: no such optimizer option; available: adam, adamw, sgd"),
    (["trainer=gpus"], "trainer=gpus: no such trainer option; available: cpu, ddp, ddp_cpu, default, gpu"),
    (["ckpt_path=/no/such/file.ckpt"], "ckpt_path: no such checkpoint file: /no/such/file.ckpt"),
    (["ckpt_path=last"], "ckpt_path=last: nothing to resume, no stopped run under"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_value_is_refused_in_one_line_before_anything_is_written(overrides, message, tmp_path, monkeypatch, capsys):
    """In-process, as `mnist-exp OVERRIDES` runs (mnist_exp/cli.py): one line, exit 1, nothing written."""
    log_dir, data_dir = tmp_path / "outputs", tmp_path / "data"
    GlobalHydra.instance().clear()
    monkeypatch.setattr(
        sys, "argv", ["mnist-exp", *overrides, f"paths.log_dir={log_dir}", f"paths.data_dir={data_dir}"]
    )
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    with pytest.raises(SystemExit) as stopped:
        cli.train()
    err = capsys.readouterr().err
    assert stopped.value.code == 1
    error_lines = [line for line in err.splitlines() if line.strip()]
    assert len(error_lines) == 1, err
    assert error_lines[0].startswith("Error: ") and message in error_lines[0], error_lines[0]
    assert list(tmp_path.iterdir()) == []  # no run dir, no data fetched


@pytest.mark.slow  # a real run / subprocesses
def test_a_sweep_with_a_bad_base_value_starts_no_job(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["-m", "optimizer.lr=-1", "model.channels=8,16", f"hydra.sweep.dir={sweep}"])
    assert (
        result.returncode == 1
        and "Error: optimizer.lr=-1 is refused by torch.optim.Adam: Invalid learning rate: -1" in result.stderr
    )
    assert not sweep.exists()


def test_the_default_config_and_every_preset_pass(tmp_path):
    for experiment in (None, "tutorial", "fast", "best"):
        check_config(compose([f"experiment={experiment}"] if experiment else [], run_dir=str(tmp_path)))


def test_interpolated_values_are_checked_after_resolution(tmp_path):
    cfg = compose(["optimizer.lr=0.01"], run_dir=str(tmp_path))
    cfg.model.hidden = "${model.channels}"
    cfg.model.channels = -3
    with pytest.raises(ConfigError, match="model.channels must be an integer >= 1, got -3"):
        check_config(cfg)


def test_the_builder_builds_everything_a_run_needs_reading_nothing_and_making_no_dir(tmp_path):
    """build.build_run, which training and the pre-run check share: every object, the schedule tried."""
    from pytorch_lightning import Trainer

    from mnist_exp.models import DigitClassifier
    from mnist_exp.training.build import build_run

    run_dir = tmp_path / "run"
    cfg = compose([f"paths.data_dir={tmp_path / 'data'}"], run_dir=str(run_dir))
    run = build_run(cfg)
    assert isinstance(run.module, DigitClassifier) and isinstance(run.trainer, Trainer)
    assert run.module.net is run.net and run.module.scheduler_config["interval"] == "step"
    assert len(run.callbacks) == len(cfg.callbacks) and len(run.loggers) == len(cfg.logger)
    assert run.datamodule.train_set is None  # nothing read
    assert list(tmp_path.iterdir()) == []  # no dir made: not the run's, not the data's
