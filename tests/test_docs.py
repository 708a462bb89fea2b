"""Every command in README.md and docs/*.md, run as written: training commands composed (their
overrides must land in the config), the others run for real on small data, error samples compared."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mnist_exp import PROJECT_ROOT, cli
from tests.helpers import TINY_RUN, compose, run_cli

DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
COMPLETION = 'eval "$(mnist-exp -sc install=bash)"'


def bash_commands(path: Path) -> list[str]:
    """Every command line in the ```bash blocks of a markdown file, comments stripped."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), re.S)
    lines = [line.split(" #", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def kind(command: str) -> str:
    """Which test runs a documented command."""
    if "hydra.searchpath=[file://my_conf]" in command:
        return "extending"
    if command in ("bash scripts/train.sh", "bash scripts/test.sh"):
        return "quickstart"
    if command.startswith(("source .venv/bin/activate", "export PGPASSWORD=")) or command == COMPLETION:
        return "shell"
    for name in ("summarize", "evaluate", "predict", "export", "reproduce"):
        if command.startswith((f"mnist-exp-{name}", f"python -m mnist_exp.{name}")):
            return "study-summary" if "--storage" in command else name
    if re.match(r"(mnist-exp|python -m mnist_exp)( |$)", command):
        return "resume" if "ckpt_path=" in command else "train"
    if command.startswith("tensorboard --logdir "):
        return "tensorboard"
    if command.startswith("optuna-dashboard "):
        return "dashboard"
    if command.startswith(("python bench/", "bash bench/")):
        return "bench"
    return "unknown"


COMMANDS = [(path.relative_to(PROJECT_ROOT).as_posix(), command) for path in DOCS for command in bash_commands(path)]


def of_kind(wanted: str) -> list[str]:
    """The documented commands of a kind, each once (the README and a doc may show the same one)."""
    return list(dict.fromkeys(command for _, command in COMMANDS if kind(command) == wanted))


def arguments(command: str) -> list[str]:
    """The arguments after the program (`mnist-exp-x` or `python -m mnist_exp.x`)."""
    words = shlex.split(command.replace("$SLURM_ARRAY_TASK_ID", "3"))
    return words[3:] if words[0] == "python" else words[1:]


def test_every_documented_command_is_one_the_tests_run():
    assert len(COMMANDS) > 30
    unknown = [f"{where}: {command}" for where, command in COMMANDS if kind(command) == "unknown"]
    assert not unknown, "a documented command no test runs:\n" + "\n".join(unknown)


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (PROJECT_ROOT / "README.md").read_text()
    quickstart = re.search(r"## Quickstart\n.*?```bash\n(.*?)```", readme, re.S).group(1)
    assert [line.split("#")[0].strip() for line in quickstart.splitlines()] == [
        "bash scripts/train.sh",
        "bash scripts/test.sh",
    ]
    assert "\nbash scripts/test.sh\n" in (PROJECT_ROOT / ".ci" / "run").read_text()


def test_the_architecture_page_names_every_folder_and_root_module():
    page = (PROJECT_ROOT / "docs" / "architecture.md").read_text()
    package = PROJECT_ROOT / "mnist_exp"
    folders = [f"`{p.name}/`" for p in package.iterdir() if p.is_dir() and (p / "__init__.py").is_file()]
    modules = [f"`{p.name}`" for p in package.glob("*.py") if p.name != "__init__.py"]
    assert folders and modules
    assert [name for name in folders + modules if name not in page] == []


def test_the_readme_stays_short_and_links_every_doc():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for doc in sorted((PROJECT_ROOT / "docs").glob("*.md")):
        assert f"(docs/{doc.name})" in readme, doc.name
    for link in re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)(?:#[\w-]+)?\)", readme):
        assert (PROJECT_ROOT / link).is_file(), link


@pytest.mark.parametrize("command", of_kind("train"))
def test_training_commands_compose_with_their_overrides(command):
    """In-process: -m only changes the mode, a grid's first point stands for it, flags just print."""
    args = [a for a in arguments(command) if a not in ("-m", "--multirun", "--help") and not a.startswith("--cfg")]
    args = [a for a in args if a not in ("job", "hydra", "all")]
    parsed = OverridesParser.create().parse_overrides(args)
    first = {
        o.get_key_element(): next(o.sweep_string_iterator()) if o.is_sweep_override() else o.value() for o in parsed
    }
    cfg = compose([f"{key}={value}" for key, value in first.items()], return_hydra_config=True)
    for key, value in first.items():
        if "/" in key or "." not in key:
            continue  # a group choice: composing it is the test
        node = OmegaConf.select(cfg, key)
        assert str(node) == str(value) or float(node) == float(value), (key, value)


@pytest.mark.slow  # a real (tiny) run, reproduced
def test_reproduce_commands_run_as_written(synthetic, tmp_path):
    run_dir = tmp_path / "outputs" / "2026-11-29" / "10-31-07"
    first = run_cli([*synthetic.overrides(), *TINY_RUN, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"])
    assert first.returncode == 0, first.stderr[-2000:]
    commands = of_kind("reproduce")
    assert commands
    for command in commands:
        args = [a.replace("outputs/", f"{tmp_path}/outputs/") for a in arguments(command)]
        result = run_cli(args, module="mnist_exp.reproduce")
        assert result.returncode == 0 and "match: test/acc" in result.stdout, result.stderr[-2000:]


@pytest.mark.slow  # a real (tiny) run to resume
def test_resume_commands_carry_on_in_the_runs_dir_with_its_config(synthetic, tmp_path):
    """Every documented resume command, against a real stopped run dir like the one the docs name (each
    command gets the run as it was stopped: a finished run is never resumed)."""
    run_dir = tmp_path / "2026-11-27" / "10-31-07_model.channels=32"
    stop = ["+callbacks.stop._target_=tests.callbacks.SignalAtStep", "+callbacks.stop.step=5"]
    first = run_cli([*synthetic.overrides(), *TINY_RUN, "model.channels=32", *stop, f"hydra.run.dir='{run_dir}'"])
    assert first.returncode == 143, first.stderr[-2000:]  # stopped by SIGTERM after step 5, last.ckpt saved
    stopped = tmp_path / "stopped"
    shutil.copytree(run_dir, stopped)
    commands = of_kind("resume")
    assert len(commands) >= 3
    for command in commands:
        shutil.rmtree(run_dir)
        shutil.copytree(stopped, run_dir)
        args = [a.replace("outputs/2026-11-27/", f"{tmp_path}/2026-11-27/") for a in arguments(command)]
        result = run_cli([*args, f"paths.log_dir={tmp_path}"])
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"Resuming {run_dir} from last.ckpt (step " in result.stderr  # the same run dir, its saved config
        resumed = sorted((run_dir / ".hydra").glob("resumed-*/config.yaml"))
        assert yaml.safe_load(resumed[-1].read_text())["model"]["channels"] == 32
        assert json.loads((run_dir / "metrics.json").read_text())["resumed_from"] == str(
            run_dir / "checkpoints" / "last.ckpt"
        )
        assert list(tmp_path.glob("2026-*/*")) == [run_dir]  # no other run dir


def test_summarize_commands_run_as_written(tmp_path, capsys):
    from mnist_exp.summarize import main as summarize_main
    from tests.helpers import fake_run, outputs

    root = outputs(tmp_path)
    for lr, accuracies in (("0.01", (0.9907, 0.9911)), ("0.02", (0.9912, 0.9909))):  # for --compare
        for seed, accuracy in enumerate(accuracies):
            metrics = {"val/acc_best": accuracy, "test/acc": accuracy, "fit_seconds": 10.0}
            overrides = ["experiment=fast", f"optimizer.lr={lr}", f"seed={seed}"]
            fake_run(root / "multirun" / f"lr{lr}" / str(seed), overrides, {}, {}, metrics)
    commands = of_kind("summarize")
    assert len(commands) >= 3
    for command in commands:
        args = [re.sub(r"^outputs/(multirun/[\d-]+/[\d-]+)?", str(root) + "/", a) for a in arguments(command)]
        assert summarize_main(args) == 0, command


def test_commands_that_need_a_server_or_a_gpu_are_run_by_their_own_tests():
    tests = {path.name: path.read_text() for path in (PROJECT_ROOT / "tests").glob("test_*.py")}
    assert of_kind("tensorboard") and '"--logdir"' in tests["test_tensorboard.py"]  # a real TensorBoard server
    assert of_kind("study-summary") and '"--storage"' in tests["test_study.py"]  # a real PostgreSQL server
    assert of_kind("dashboard") and "optuna-dashboard" in tests["test_dashboard.py"]  # a real browser
    assert [c for _, c in COMMANDS if c.startswith("eval ")] == [COMPLETION]
    assert "-sc install=bash" in tests["test_one_voice.py"]
    for command in of_kind("extending"):  # tests/test_extending.py runs these with a user's files in a temp dir
        program = (
            "mnist_exp" if command.split()[0] == "mnist-exp" else "mnist_exp." + command.split()[0].rsplit("-", 1)[1]
        )
        assert f'"{program}"' in tests["test_extending.py"], command


@pytest.mark.parametrize("command", of_kind("bench"))
def test_benchmark_commands_parse(command):
    words = shlex.split(command)
    if words[0] == "bash":
        result = subprocess.run(["bash", "-n", words[1]], cwd=PROJECT_ROOT, capture_output=True, text=True)
    else:
        result = subprocess.run([sys.executable, words[1], "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def console_samples() -> list[tuple[str, str, list[str]]]:
    """($ command, the output lines shown under it) from the ```console blocks of the docs."""
    samples = []
    for path in DOCS:
        for block in re.findall(r"```console\n(.*?)```", path.read_text(), re.S):
            for chunk in block.split("$ ")[1:]:
                command, *output = chunk.strip().splitlines()
                samples.append((path.name, command, output))
    return samples


@pytest.mark.parametrize(("where", "command", "output"), console_samples())
def test_error_samples_are_what_the_command_prints(where, command, output, tmp_path):
    script, *args = shlex.split(command)
    module = next(c.module for c in cli.COMMANDS.values() if c.script == script)
    result = run_cli([*args, f"paths.log_dir={tmp_path}"], module=module, as_script=True)
    assert result.returncode != 0 and result.stderr.strip().splitlines() == output


@pytest.fixture(scope="module")
def trained(synthetic_run, tmp_path_factory) -> tuple[list[str], Path]:
    """A copy of the tiny synthetic run in its own log dir: (the data overrides, that log dir)."""
    data, run_dir = synthetic_run
    log_dir = tmp_path_factory.mktemp("docs-outputs")
    shutil.copytree(run_dir, log_dir / "2026-11-27" / "10-31-07")
    return data.overrides(), log_dir


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for k in ("evaluate", "predict", "export") for c in of_kind(k)])
def test_use_a_model_commands_run_as_written(command, trained, tmp_path):
    from PIL import Image

    from tests.helpers import synthetic_digits

    data_overrides, log_dir = trained
    checkpoint = log_dir / "2026-11-27" / "10-31-07" / "checkpoints" / "last.ckpt"
    images, _ = synthetic_digits(3, seed=5)
    (tmp_path / "my_digits").mkdir()
    for i, image in enumerate(images):
        Image.fromarray(255 - image).save(tmp_path / "my_digits" / f"digit{i}.png")  # dark ink on light paper
    args = [re.sub(r"^ckpt_path=(PATH|outputs/.*)$", f"ckpt_path={checkpoint}", a) for a in arguments(command)]
    name = kind(command)
    extra = [f"paths.log_dir={log_dir}"] + (data_overrides if name == "evaluate" else [])
    result = run_cli([*args, *extra], cwd=tmp_path, module=f"mnist_exp.{name}")
    assert result.returncode == 0, result.stderr[-3000:]
    if "ckpt_path=last" in args:  # each command says which file `last` was
        assert f"ckpt_path=last: {checkpoint}" in result.stderr
    if name == "evaluate":
        assert "test accuracy" in result.stdout
    elif name == "predict":
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(lines) == 3 and all("digit" in line for line in lines)
    else:
        written = checkpoint.with_suffix(".onnx" if "format=onnx" in args else ".pt2")
        assert result.stdout.startswith(f"Wrote {written} ") and written.is_file()
