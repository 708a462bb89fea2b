"""Every command speaks one way: the usual mistakes end in one `Error:` line that says what to type,
exit status 1, no traceback and no dir left behind (mnist_exp/cli.py); shell completion works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_exp import cli
from tests.helpers import run_cli

BIN = Path(sys.executable).parent  # the console scripts live beside the interpreter
REQUIRED_CKPT = "ckpt_path=PATH (a .ckpt file) or ckpt_path=last (the newest run's last.ckpt)"
REQUIRED_INPUTS = "inputs=FILE, a DIR, a 'GLOB' or [a.png,b.png]"

# (command, arguments, the one line it must print; LOG stands for the test's paths.log_dir)
MISTAKES = [
    ("evaluate", [], f"Error: ckpt_path is required: {REQUIRED_CKPT}; e.g. mnist-exp-evaluate ckpt_path=last"),
    (
        "predict",
        [],
        f"Error: ckpt_path and inputs are required: {REQUIRED_CKPT}; {REQUIRED_INPUTS}; "
        "e.g. mnist-exp-predict ckpt_path=last inputs=my_digits/",
    ),
    (
        "predict",
        ["ckpt_path=last"],
        f"Error: inputs is required: {REQUIRED_INPUTS}; e.g. mnist-exp-predict ckpt_path=last inputs=my_digits/",
    ),
    ("export", [], f"Error: ckpt_path is required: {REQUIRED_CKPT}; e.g. mnist-exp-export ckpt_path=last format=onnx"),
    ("train", ["model.chanels=8"], "Error: model.chanels: no such config key; did you mean model.channels?"),
    (
        "evaluate",
        ["ckpt_path=last", "model.chanels=8"],
        "Error: model.chanels: no such config key; did you mean model.channels?",
    ),
    ("predict", ["ckpt_path=last", "inputs=x", "topk=3"], "Error: topk: no such config key; did you mean top_k?"),
    ("export", ["ckpt_path=last", "formt=onnx"], "Error: formt: no such config key; did you mean format?"),
    (
        "predict",
        ["ckpt_path=last", "inputs=x", "optimizer=sgd"],
        "Error: optimizer: no such config key; "
        "the config has: paths, ckpt_path, inputs, top_k, output, attributions, device, batch_size",
    ),
    (
        "train",
        ["model.foo=1"],
        "Error: model.foo: no such config key; model has: channels, hidden, kernel_size, dropout, "
        "batch_norm, convs_per_block, pool_first, num_classes, in_channels, image_size",
    ),
    (
        "train",
        ["trainer.profilr=simple"],
        "Error: trainer.profilr: no such config key; a Trainer argument that mnist_exp/conf/trainer "
        "does not list takes a leading +: +trainer.profilr=...",
    ),
    ("train", ["optimizer=adamm"], "Error: optimizer=adamm: no such optimizer option; available: adam, adamw, sgd"),
    (
        "evaluate",
        ["ckpt_path=last", "data=mnistt"],
        "Error: data=mnistt: no such data option; available: fashion_mnist, mnist",
    ),
    (
        "evaluate",
        ["ckpt_path"],
        "Error: ckpt_path: not an override; write KEY=VALUE (e.g. ckpt_path=last); "
        "see https://hydra.cc/docs/advanced/override_grammar/basic/",
    ),
    ("train", ["model.channels=0"], "Error: model.channels must be an integer >= 1, got 0"),
    (
        "train",
        ["--model.channels=32"],
        "Error: --model.channels=32: an override takes no dashes; write model.channels=32",
    ),
    ("train", ["--cfg", "jobs"], "Error: --cfg takes job, hydra or all (what to print), not 'jobs'"),
    (
        "train",
        ["-m", "--cfg", "job"],
        "Error: -m and --cfg cannot be combined: give one of -m (--multirun), --cfg, --info, -sc",
    ),
    ("train", ["experiment=fast.yaml"], "Error: experiment=fast.yaml: name the option without .yaml: experiment=fast"),
    (
        "evaluate",
        ["ckpt_path=last", "--data=fashion_mnist"],
        "Error: --data=fashion_mnist: an override takes no dashes; write data=fashion_mnist",
    ),
    ("train", ["optimizer.lr=-1"], "Error: optimizer.lr=-1 is refused by torch.optim.Adam: Invalid learning rate: -1"),
    ("train", ["-m", "optimzer.lr=0.1,0.2"], "Error: optimzer.lr: no such config key; did you mean optimizer.lr?"),
    ("predict", ["ckpt_path=last", "inputs=x", "top_k=0"], "Error: top_k must be an integer >= 1, got 0"),
    *[
        (name, ["ckpt_path=/no/such.ckpt", *extra], "Error: ckpt_path: no such checkpoint file: /no/such.ckpt")
        for name, extra in [("train", []), ("evaluate", []), ("predict", ["inputs=x"]), ("export", [])]
    ],
    ("train", ["ckpt_path=last"], "Error: ckpt_path=last: nothing to resume, no stopped run under LOG"),
    *[
        (name, ["ckpt_path=last", *extra], "Error: ckpt_path=last: no checkpoints/last.ckpt under LOG")
        for name, extra in [("evaluate", []), ("predict", ["inputs=x"]), ("export", [])]
    ],
]


@pytest.mark.parametrize(
    ("name", "args", "line"), MISTAKES, ids=[f"{n}-{' '.join(a) or 'nothing'}" for n, a, _ in MISTAKES]
)
def test_a_mistake_is_one_line_that_says_what_to_type(name, args, line, tmp_path):
    log_dir = tmp_path / "outputs"
    result = run_cli([*args, f"paths.log_dir={log_dir}"], module=cli.COMMANDS[name].module, as_script=True)
    assert result.returncode == 1
    assert [ln for ln in result.stderr.splitlines() if ln.strip()] == [line.replace("LOG", str(log_dir))]
    assert not log_dir.exists()  # nothing made, not even an empty run dir


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ([], "Error: give a DIR, or --storage URL for a whole Optuna study; see mnist-exp-summarize --help"),
        (["/no/such/dir"], "Error: /no/such/dir: no such directory"),
        (["/tmp", "--where", "x"], "Error: --where takes KEY=VALUE, got x"),
    ],
)
def test_summarize_speaks_the_same_way(args, line):
    result = run_cli(args, module="mnist_exp.summarize", as_script=True)
    assert result.returncode == 1 and result.stderr.strip() == line


@pytest.mark.parametrize("name", ["train", "evaluate", "predict", "export"])
def test_help_shows_the_commands_own_usage_and_keys(name):
    command = cli.COMMANDS[name]
    result = subprocess.run([str(BIN / command.script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{command.script} (or python -m {command.module}):")
    assert f"Usage: {command.script} " in result.stdout
    if name != "train":  # the training groups are not offered where they do not apply
        assert (
            "optimizer" not in result.stdout and "callbacks" not in result.stdout and "experiment" not in result.stdout
        )
        assert "ckpt_path: ???" in result.stdout


def complete(line: str) -> list[str]:
    """What bash offers after `line`, through the completion function Hydra installs for the command."""
    script = line.split()[0]
    program = f"""
        eval "$({BIN / script} -sc install=bash)"
        COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; read -ra COMP_WORDS <<< "$COMP_LINE"
        COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); [[ "$COMP_LINE" == *" " ]] && COMP_CWORD=${{#COMP_WORDS[@]}}
        hydra_bash_completion
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_shell_completion_works_for_the_installed_commands():
    assert complete("mnist-exp model.ch") == ["model.channels="]
    assert complete("mnist-exp optimizer=") == ["optimizer=adam", "optimizer=adamw", "optimizer=sgd"]
    assert complete("mnist-exp-predict to") == ["top_k="]


def test_predict_checks_its_inputs_before_it_reads_the_checkpoint(tmp_path):
    """A misspelled inputs dir is said at once: the (here unreadable) checkpoint is not even read."""
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"not read")
    result = run_cli([f"ckpt_path={checkpoint}", f"inputs={tmp_path}/my_digitz/"], module="mnist_exp.predict")
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: inputs={tmp_path}/my_digitz/: no such file or dir"
