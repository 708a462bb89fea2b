"""The real CLI, run as a subprocess with tiny limits on synthetic data."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
import torchvision

from mnist_exp import PROJECT_ROOT
from mnist_exp.records.checkpoints import read_checkpoint
from tests import callbacks
from tests.helpers import TINY_RUN, load_events, run_cli

METRIC_KEYS = {"test/acc", "test/loss", "val/acc_best", "epochs", "fit_seconds", "checkpoint"}


@pytest.mark.slow
def test_tiny_run_writes_config_events_checkpoints_and_metrics(synthetic_run):
    synthetic, run_dir = synthetic_run  # the same command and overrides: the run the session trained once
    result = subprocess.CompletedProcess([], 0, (run_dir.parent / "stdout.txt").read_text(), "")

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert METRIC_KEYS <= metrics.keys()
    # a tenth of the synthetic labels are flipped: learned, not saturated
    assert metrics["epochs"] == 2 and 0.5 < metrics["test/acc"] < 1.0 and metrics["fit_seconds"] > 0
    assert metrics["checkpoint"].startswith(str(run_dir / "checkpoints" / "epoch"))
    last = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 1  # the final epoch's weights, whatever the best one was
    assert metrics["tested"] == metrics["checkpoint"]  # test_checkpoint=best by default
    assert (run_dir / ".hydra" / "config.yaml").exists() and (run_dir / ".hydra" / "overrides.yaml").exists()
    # The run record: what ran, from which code, on what, with which outcome; the checkpoint says the same.
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok" and record["metrics"] == metrics and record["error"] is None
    assert record["started"] <= record["ended"] and record["seed"] == 42
    assert {"key": "trainer.max_epochs", "value": 2} in record["overrides"] and record["choices"]["data"] == "synthetic"
    provenance = record["provenance"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()
    assert provenance["git"]["commit"] == head and isinstance(provenance["git"]["dirty"], bool)
    assert {"python", "torch", "pytorch-lightning", "hydra-core", "optuna", "mnist-exp"} <= provenance[
        "versions"
    ].keys()
    # torch as torch.__version__ names it: the build (`+cu130`, `+cpu`) is part of what ran
    assert provenance["versions"]["torch"] == torch.__version__
    assert provenance["versions"]["torchvision"] == torchvision.__version__
    assert provenance["build"] == {
        "cuda": torch.version.cuda,
        "cudnn": provenance["build"]["cudnn"],
        "accelerator": None,
    }
    assert provenance["data_sha256"] == synthetic.checksums
    assert provenance["precision"] == metrics["precision"] and provenance["hardware"] == metrics["hardware"]
    assert last["provenance"] == provenance
    # Files written atomically (a private temp file renamed) get the mode of every other file of the run dir.
    mode = (run_dir / ".hydra" / "config.yaml").stat().st_mode & 0o777
    for name in ("metrics.json", "test_report.json", "confusion_matrix.png", "checkpoints/last.ckpt"):
        assert (run_dir / name).stat().st_mode & 0o777 == mode, name

    events = load_events(run_dir)
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "train/loss_step", "test/acc"} <= scalars
    assert any(tag.startswith("lr-") for tag in scalars)
    assert len(events.Scalars("val/acc")) == 2  # once per epoch
    assert "samples/train_inputs" in events.Tags()["images"]
    hparams = events.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in hparams and "_hparams_/session_start_info" in hparams
    assert b"model.channels" in hparams["_hparams_/session_start_info"]
    assert b"test/acc" in hparams["_hparams_/experiment"]

    assert "tensorboard --logdir" in result.stdout and "test accuracy" in result.stdout

    # One line per epoch in a redirected run's output and in train.log; no Lightning advert.
    epoch_line = re.compile(
        r"epoch (\d)/2  train loss \d\.\d{4} acc [\d.]+%  val loss \d\.\d{4} acc [\d.]+%( \(new best\))?  "
        r"[\d.]+ s, [\d,]+ images/s$"
    )
    log = (run_dir / "train.log").read_text()
    for text in (result.stdout, log):
        epochs = [m.group(1) for line in text.splitlines() if (m := epoch_line.search(line))]
        assert epochs == ["1", "2"], text[-3000:]
        assert "(new best)" in text and "Tip:" not in text
    # The console: the project's lines, plain; the network's layers, not Lightning's summary of every metric
    # object; no bar drawn into a redirected log; the paths whole on lines of their own. train.log: all of it.
    console = result.stdout.splitlines()
    assert not [line for line in console if line.startswith("[20")], "timestamped library lines on the console"
    assert "Seed set to 42" not in result.stdout and "Seed set to 42" in log
    assert "model CNN: 206,922 parameters" in console and "Total FLOPs" not in result.stdout
    assert "it/s" not in result.stdout  # the progress bar's speed
    assert f"Run dir: {run_dir}" in console and f"Checkpoint: {metrics['checkpoint']}" in console
    assert f"test accuracy: {metrics['test/acc']:.4f}" in log and f"Run dir: {run_dir}" in log


@pytest.mark.slow
def test_sgd_onecycle_csv_wider_model_runs(synthetic, tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["optimizer=sgd", "optimizer.lr=0.05", "scheduler=onecycle", "logger=csv", "model.channels=32"]
    result = run_cli([*synthetic.overrides(), *TINY_RUN, *overrides, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "csv" / "metrics.csv").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    # each override took effect: SGD's state, the one-cycle schedule's peak, 32 channels in the first conv
    checkpoint = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    (group,) = checkpoint["optimizer_states"][0]["param_groups"]
    assert {"nesterov", "dampening"} <= group.keys() and "betas" not in group
    assert group["max_lr"] == pytest.approx(0.05)
    (first_conv,) = [t for k, t in checkpoint["state_dict"].items() if k.endswith("weight") and t.dim() == 4][:1]
    assert first_conv.shape[0] == 32


@pytest.mark.slow
def test_checksum_mismatch_stops_before_training_with_a_clear_error(synthetic, tmp_path):
    (synthetic.folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03tampered")
    run_dir = tmp_path / "run"
    result = run_cli([*synthetic.overrides(), *TINY_RUN, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Could not obtain dataset 'synthetic'" in output
    assert "train-images-idx3-ubyte SHA-256 mismatch" in output
    assert "Traceback" not in output
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.json").exists()
    assert not list(run_dir.glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_on_a_terminal_each_epoch_line_prints_once_and_reaches_train_log(synthetic, tmp_path):
    """With a rich progress bar drawing on a terminal, the epoch lines go through its console."""
    run_dir = tmp_path / "run"
    main_fd, child_fd = os.openpty()
    command = [sys.executable, "-m", "mnist_exp", *synthetic.overrides(), *TINY_RUN, f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=child_fd,
        stderr=child_fd,
        env={**os.environ, "COLUMNS": "200", "HYDRA_FULL_ERROR": "0"},
    )
    os.close(child_fd)
    chunks = []
    try:
        while True:
            try:
                data = os.read(main_fd, 1 << 16)
            except OSError:  # the terminal closed: the run ended
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(main_fd)
        assert process.wait(timeout=300) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert screen.count("epoch 1/2  train loss") == 1 and screen.count("epoch 2/2  train loss") == 1
    assert "Epoch 2/2" in screen and "Epoch 0" not in screen  # the bar counts epochs as the lines do, from 1
    assert "on_after_batch_transfer" not in screen  # Lightning's note on a hook the module owns by design
    log = (run_dir / "train.log").read_text()
    assert log.count("epoch 1/2  train loss") == 1 and log.count("epoch 2/2  train loss") == 1


def test_a_run_is_built_once_and_seeded_as_a_sweep_job_is(synthetic, tmp_path):
    """The pre-run check builds a single run for the dir it gets and train() fits that one: built once, its
    weights and shuffles drawn from the seed exactly as in a sweep job, which builds its run itself."""
    counted = ["+callbacks.builds._target_=tests.callbacks.RecordBuilds", "trainer.max_epochs=1"]
    made = callbacks.RecordBuilds.made
    single = run_cli([*synthetic.overrides(), *TINY_RUN, *counted, f"hydra.run.dir={tmp_path / 'run'}"])
    assert single.returncode == 0, single.stderr[-3000:]
    swept = run_cli(["-m", *synthetic.overrides(), *TINY_RUN, *counted, "seed=42", f"hydra.sweep.dir={tmp_path / 's'}"])
    assert swept.returncode == 0, swept.stderr[-3000:]
    built = json.loads((tmp_path / "run" / "built.json").read_text())
    (job,) = [json.loads(path.read_text()) for path in (tmp_path / "s").glob("*/built.json")]
    assert built["made"] == made + 1  # the check's build, fitted: no second one
    assert job["made"] == made + 3  # the sweep's check of its base config, then the job's own build
    assert (built["weights"], built["rng"]) == (job["weights"], job["rng"])
    assert "Seed set to 42" in (tmp_path / "run" / "train.log").read_text()
