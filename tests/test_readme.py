"""The README's documented commands, run as written (training ones with small overrides)."""

import json
import re
import shlex

import pytest

from mnist_exp import PROJECT_ROOT
from tests.conftest import run_cli
from tests.helpers import stopped_run_dir

README = (PROJECT_ROOT / "README.md").read_text()


def code_block_after(heading: str) -> list[str]:
    section = README.split(heading, 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    assert code_block_after("## Quickstart") == ["bash scripts/train.sh", "bash scripts/test.sh"]
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "\nbash scripts/test.sh\n" in ci


@pytest.mark.slow
def test_quickstart_train_command_learns_real_mnist_in_one_epoch(real_mnist_run):
    """`bash scripts/train.sh` on real MNIST, one epoch: at least 97% on the official test set."""
    metrics = json.loads((real_mnist_run / "metrics.json").read_text())
    assert metrics["epochs"] == 1
    assert metrics["test/acc"] >= 0.97, metrics
    stdout = (real_mnist_run / "stdout.txt").read_text()
    assert f"Browse this run: tensorboard --logdir {real_mnist_run}\n" in stdout


EVERYDAY = [line for line in code_block_after("## Everyday use") if line.startswith("python -m mnist_exp")]


@pytest.mark.parametrize("command", EVERYDAY)
def test_everyday_commands_compose(command):
    args = shlex.split(command)[3:]
    if "--cfg" not in args and "--help" not in args:
        args.append("--cfg=job")  # compose and print, without training
    result = run_cli(args, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for override in (a for a in args if "=" in a and not a.startswith("-")):
        key, value = override.split("=", 1)
        if "." in key:  # a key override shows up in the printed config
            assert f"{key.rsplit('.', 1)[1]}: {value}" in result.stdout, override


RESUME = code_block_after("### A run was stopped: resume it")
DDP = code_block_after("### More processes: Lightning DDP")


def test_resume_commands_carry_on_in_the_runs_dir_with_its_overrides(tmp_path):
    """Both resume commands, as written, against a run dir like the one in the README."""
    run_dir = stopped_run_dir(tmp_path, "10-31-07_model.channels=32", ["model.channels=32"])
    assert len(RESUME) == 2
    for command in RESUME:
        args = [a.replace("outputs/", f"{tmp_path}/") for a in shlex.split(command)[3:]]
        result = run_cli([*args, f"paths.log_dir={tmp_path}", "--cfg", "all"], timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "  channels: 32\n" in result.stdout  # the run's own override
        assert f"ckpt_path: {run_dir}/checkpoints/last.ckpt\n" in result.stdout
        assert f"dir: {run_dir}\n" in result.stdout  # hydra.run.dir: the same run dir


@pytest.mark.parametrize("command", DDP)
def test_ddp_commands_compose(command):
    result = run_cli([*shlex.split(command)[3:], "--cfg", "job"], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "strategy:" in result.stdout


RUNS = code_block_after("### Which run was best?")


def test_runs_table_commands_run_as_written(tmp_path):
    from mnist_exp.summarize import main as summarize_main
    from tests.test_runs_table import outputs

    root = outputs(tmp_path)
    assert len(RUNS) == 2
    for command in RUNS:
        args = shlex.split(command)[3:]
        assert args[0] == "outputs/"
        assert summarize_main([str(root), *args[1:]]) == 0


def bash_commands(path) -> list[str]:
    """Every command line in the ```bash blocks of a markdown file, comments stripped."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), re.S)
    lines = [line.split(" #", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


SWEEP_DOC = PROJECT_ROOT / "docs" / "sweeps.md"
SWEEP_COMMANDS = [c for c in bash_commands(SWEEP_DOC) if c.startswith("python -m mnist_exp ")]


@pytest.mark.parametrize("command", SWEEP_COMMANDS)
def test_sweep_doc_commands_compose(command):
    """docs/sweeps.md's sweep commands compose as written (in-process; -m only changes the mode)."""
    from tests.helpers import compose

    args = [a for a in shlex.split(command.replace("$SLURM_ARRAY_TASK_ID", "3"))[3:] if a != "-m"]
    overrides = [a.split("=", 1)[0] + "=" + a.split("=", 1)[1].split(",")[0] for a in args]  # a grid's first point
    cfg = compose(overrides, return_hydra_config=True)
    for override in overrides:
        key, value = override.split("=", 1)
        if "/" not in key and "." in key:
            node = cfg
            for part in key.split("."):
                node = node[part]
            assert str(node) == value or float(node) == float(value), override
    if "hparams_search=optuna" in args:
        assert cfg.hydra.sweeper._target_.endswith("OptunaStudySweeper")
