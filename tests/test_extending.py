"""docs/extending.md, done as a user would: their own package and config dir, outside the project, with an
MLP model, an RMSprop optimizer and a dataset of their own files and digests, through train -> a sweep
-> evaluate -> predict -> export, every command unchanged but for hydra.searchpath."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from mnist_exp import PROJECT_ROOT
from mnist_exp.records.checkpoints import read_checkpoint
from tests.helpers import FLIPPED_LABELS, flip_labels, run_cli, run_process, synthetic_digits, write_synthetic

pytestmark = pytest.mark.slow

DOC = (PROJECT_ROOT / "docs" / "extending.md").read_text()


def doc_file(name: str) -> str:
    """The content the doc shows for a file (the code block after its name in backquotes)."""
    after = DOC.split(f"`{name}`:\n\n```", 1)[1]
    return after.split("\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def user_project(tmp_path):
    """The doc's files in a user's own dir, plus a dataset config over synthetic IDX files."""
    data = write_synthetic(tmp_path)  # conf/data/synthetic.yaml with its own files and SHA-256
    package = tmp_path / "my_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("my_models/mlp.py", "my_conf/model/mlp.yaml", "my_conf/optimizer/rmsprop.yaml"):
        path = tmp_path / name.replace("my_conf", "conf")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc_file(name))
    return tmp_path, data


def run(command: list[str], cwd: Path, process: bool = False) -> subprocess.CompletedProcess:
    """`python -m COMMAND` in the user's dir, their package importable: in a process of its own, or through
    the same entry point in this one (as fast, without the ~6 s import)."""
    if process:
        return run_process(command[1:], cwd=cwd, module=command[0], env={"PYTHONPATH": str(cwd)})
    return run_cli(command[1:], cwd=cwd, module=command[0], importable=[cwd])


def test_a_users_model_optimizer_and_dataset_go_through_every_command(user_project):
    root, data = user_project
    search = [f"hydra.searchpath=[file://{root / 'conf'}]", f"paths.log_dir={root / 'outputs'}"]
    mine = [*search, "model=mlp", "optimizer=rmsprop", "data=synthetic", f"paths.data_dir={data.data_dir}"]
    tiny = ["trainer.max_epochs=2", "data.batch_size=32", "trainer.accelerator=cpu", "trainer.log_every_n_steps=5"]

    trained = run(["mnist_exp", *mine, *tiny, f"hydra.run.dir={root / 'run'}"], root, process=True)
    assert trained.returncode == 0, trained.stderr[-3000:]
    # a real process imports Lightning before Hydra sets up logging: still, its INFO lines reach train.log alone
    assert "Seed set to" not in trained.stdout + trained.stderr and "GPU available" not in trained.stdout
    assert "Seed set to 42" in (root / "run" / "train.log").read_text()
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    # the blocks are easy to learn (10 classes give 0.1 by chance); a tenth of the labels are flipped
    assert 0.5 < metrics["test/acc"] < 1.0
    # the user's model and optimizer took effect: the weights are the MLP's layers, the state RMSprop's
    last = read_checkpoint(root / "run" / "checkpoints" / "last.ckpt")
    assert {"net.layers.0.weight", "net.layers.1.weight"} & set(last["state_dict"]) and not any(
        key.startswith("net.conv") or ".features." in key for key in last["state_dict"]
    )
    (group,) = last["optimizer_states"][0]["param_groups"]
    assert {"alpha", "centered"} <= group.keys()  # RMSprop's own hyperparameters (Adam has betas)

    swept = run(["mnist_exp", "-m", *mine, *tiny, "model.dropout=0.0,0.2", f"hydra.sweep.dir={root / 'sweep'}"], root)
    assert swept.returncode == 0, swept.stderr[-3000:]
    assert len(list((root / "sweep").glob("*/metrics.json"))) == 2

    # evaluate rebuilds the model the run tested (metrics.json names it) and scores what the run scored;
    # the run's other checkpoint (its final weights, when they are not the tested ones) scores otherwise
    checkpoint = root / "run" / "checkpoints" / "last.ckpt"
    evaluations = {}
    for name, path in (("tested", metrics["checkpoint"]), ("last", checkpoint)):
        evaluated = run(
            [
                "mnist_exp.evaluate",
                *search,
                "data=synthetic",
                f"paths.data_dir={data.data_dir}",
                f"ckpt_path={path}",
                f"hydra.run.dir={root / 'evaluate' / name}",
            ],
            root,
        )
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        evaluations[name] = json.loads((root / "evaluate" / name / "evaluation.json").read_text())
    assert evaluations["tested"]["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert evaluations["tested"]["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-5)
    if read_checkpoint(metrics["checkpoint"])["global_step"] != last["global_step"]:
        assert evaluations["last"]["test/loss"] != pytest.approx(metrics["test/loss"], rel=1e-5)

    images, _ = synthetic_digits(2, seed=9)
    for i, image in enumerate(images):
        Image.fromarray(image).save(root / f"digit{i}.png")
    predicted = run(["mnist_exp.predict", *search, f"ckpt_path={checkpoint}", f"inputs={root}/digit*.png"], root)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert [json.loads(line)["file"].endswith(".png") for line in predicted.stdout.splitlines()] == [True, True]

    exported = run(["mnist_exp.export", *search, f"ckpt_path={checkpoint}", "format=onnx"], root)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert checkpoint.with_suffix(".onnx").stat().st_size > 1000

    # without the user's model config on the search path, the checkpoint's model is not one we may build
    only_data = root / "only_data" / "data"
    only_data.mkdir(parents=True)
    (only_data / "synthetic.yaml").write_text((data.config_dir / "data" / "synthetic.yaml").read_text())
    refused = run(
        [
            "mnist_exp.evaluate",
            f"hydra.searchpath=[file://{only_data.parent}]",
            "data=synthetic",
            f"paths.data_dir={data.data_dir}",
            f"ckpt_path={checkpoint}",
            f"paths.log_dir={root / 'outputs'}",
        ],
        root,
    )
    assert refused.returncode == 1 and "my_models.mlp.MLP" in refused.stderr
    assert len([line for line in refused.stderr.splitlines() if line.strip()]) == 1


def test_a_colour_dataset_of_another_size_flows_to_the_model_and_export(tmp_path):
    """A dataset config with 3 channels of 32x32 pixels in .npy files (reader numpy.load), per-channel
    mean/std: the CNN's input size follows the data config, and export takes [N, 3, 32, 32]."""
    import hashlib

    import numpy as np
    import torch

    folder = tmp_path / "data" / "colour"
    folder.mkdir(parents=True)
    files = {}
    for split, count, seed in (("train", 600, 1), ("test", 200, 2)):
        gray, labels = synthetic_digits(count, seed)
        labels = flip_labels(labels, FLIPPED_LABELS, seed)
        pad = np.pad(gray, ((0, 0), (2, 2), (2, 2)))  # 32 x 32
        images = np.stack([pad, pad // 2, 255 - pad], axis=-1)  # [N, 32, 32, 3]
        for role, array in (("images", images), ("labels", labels)):
            path = folder / f"{split}_{role}.npy"
            np.save(path, array)
            files[f"{split}_{role}"] = f"{{file: {path.name}, sha256: {hashlib.sha256(path.read_bytes()).hexdigest()}}}"
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "colour.yaml").write_text(
        "defaults:\n  - mnist\n  - _self_\nname: colour\nchannels: 3\nimage_size: 32\ntrain_size: 600\nval_size: 100\n"
        "eval_batch_size: 100\nreader:\n  _target_: numpy.load\n  _partial_: true\nsources: []\nfiles:\n"
        + "".join(f"  {role}: {spec}\n" for role, spec in files.items())
    )
    common = [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", f"paths.log_dir={tmp_path / 'outputs'}"]
    data = ["data=colour", f"paths.data_dir={tmp_path / 'data'}"]
    trained = run(
        [
            "mnist_exp",
            *common,
            *data,
            "trainer.max_epochs=2",
            "data.batch_size=32",
            "trainer.accelerator=cpu",
            "transforms.mean=[0.5,0.4,0.5]",
            "transforms.std=[0.5,0.3,0.5]",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        tmp_path,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert 0.5 < json.loads((tmp_path / "run" / "metrics.json").read_text())["test/acc"] < 1.0
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"

    evaluated = run(["mnist_exp.evaluate", *common, *data, f"ckpt_path={checkpoint}"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]

    exported = run(["mnist_exp.export", *common, f"ckpt_path={checkpoint}"], tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "float32 images [N, 3, 32, 32]" in exported.stdout
    archive = torch.export.load(checkpoint.with_suffix(".pt2")).module()  # format=pt2, the default
    assert archive(torch.zeros(4, 3, 32, 32)).shape == (4, 10)

    predicted = run(["mnist_exp.predict", *common, f"ckpt_path={checkpoint}", f"inputs={folder}"], tmp_path)
    assert predicted.returncode == 1
    assert predicted.stderr.strip().startswith("Error: ") and "[3, 32, 32]" in predicted.stderr
