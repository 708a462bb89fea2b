"""Lightning DDP on the CPU: 2 processes over gloo, each on its own shard; rank 0 alone writes."""

import json

import pytest

from mnist_exp.records.checkpoints import read_checkpoint
from tests.helpers import run_cli, run_process, write_synthetic

pytestmark = pytest.mark.slow


def test_two_process_cpu_ddp_fit_tests_like_a_single_process_evaluation(tmp_path):
    # 203 test images in batches of 50: uneven shards, each image scored exactly once.
    data = write_synthetic(tmp_path, train=1000, test=203)
    log_dir = tmp_path / "outputs"
    # A small learning rate, so the accuracy is not a trivial 100%. Floats compared across processes:
    # precision and threads pinned on both sides (`auto` would train in bf16 where the CPU has it).
    pinned = ["trainer.precision=32-true", "torch_threads=1"]
    run = [
        "trainer=ddp_cpu",
        *pinned,
        "trainer.max_epochs=1",
        "data.batch_size=64",
        "data.eval_batch_size=50",
        "scheduler=none",
        "optimizer.lr=0.00005",
        "callbacks.test_report.mistakes=4",
        f"paths.log_dir={log_dir}",
    ]
    result = run_process([*data.overrides(), *run])  # Lightning starts rank 1 by rerunning the command
    assert result.returncode == 0, result.stderr[-3000:]

    (run_dir,) = [p for p in log_dir.glob("*/*") if p.is_dir()]  # one Hydra run dir for both processes
    assert (run_dir / "train_ddp_process_1.log").exists()  # rank 1 ran, logging into the same dir
    assert len(list(log_dir.glob("*/*"))) == 1 and result.stdout.count("mnist-exp run") == 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    events = list(run_dir.glob("events.out.tfevents.*"))
    # events.out.tfevents.TIME.HOST.PID.N, HOST may hold dots: one writing process (pid)
    assert events and len({path.name.rsplit(".", 2)[1] for path in events}) == 1
    checkpoint = read_checkpoint(metrics["checkpoint"])
    # 900 training images, a disjoint half per process in batches of 64: 8 steps per epoch (one process: 15).
    assert checkpoint["global_step"] == 8
    assert 0.2 < metrics["test/acc"] < 1.0

    evaluated = run_cli(
        [
            *data.overrides(),
            f"ckpt_path={metrics['checkpoint']}",
            "data.eval_batch_size=50",
            "trainer=cpu",
            *pinned,
            f"hydra.run.dir={tmp_path / 'evaluate'}",
        ],
        module="mnist_exp.evaluate",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    single = json.loads((tmp_path / "evaluate" / "evaluation.json").read_text())
    assert single["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-9)
    assert single["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-5)
    assert sum(row["support"] for row in single["per_class"].values()) == 203


def test_ddp_cannot_start_its_processes_inside_a_sweep(synthetic, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            *synthetic.overrides(),
            "trainer=ddp_cpu",
            "trainer.max_epochs=1",
            "data.batch_size=32",  # 16 steps: enough for the one-cycle schedule (the pre-run check builds it)
            "model.channels=4,8",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert result.returncode == 1
    assert "trainer=ddp/ddp_cpu cannot start its processes inside a -m sweep" in (sweep / "summary.md").read_text()
