"""docs/extending.md, done as a user would: their own package and config dir, outside the project, with an
MLP model, an RMSprop optimizer and a dataset of their own files and digests, through train -> a sweep
-> evaluate -> predict -> export, every command unchanged but for hydra.searchpath."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mnist_exp import PROJECT_ROOT
from tests.helpers import synthetic_digits, write_synthetic

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


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd), "PYTHONUNBUFFERED": "1"}  # the user's package is importable
    return subprocess.run([sys.executable, "-m", *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_users_model_optimizer_and_dataset_go_through_every_command(user_project):
    root, data = user_project
    search = [f"hydra.searchpath=[file://{root / 'conf'}]", f"paths.log_dir={root / 'outputs'}"]
    mine = [*search, "model=mlp", "optimizer=rmsprop", "data=synthetic", f"paths.data_dir={data.data_dir}"]
    tiny = ["trainer.max_epochs=2", "data.batch_size=32", "trainer.accelerator=cpu", "trainer.log_every_n_steps=5"]

    trained = run(["mnist_exp", *mine, *tiny, f"hydra.run.dir={root / 'run'}"], root)
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    assert metrics["test/acc"] > 0.5  # the blocks are easy to learn; 10 classes give 0.1 by chance
    assert "layers" in (root / "run" / ".hydra" / "config.yaml").read_text() or "MLP" in (root / "run" / ".hydra" / "config.yaml").read_text()

    swept = run(["mnist_exp", "-m", *mine, *tiny, "model.dropout=0.0,0.2", f"hydra.sweep.dir={root / 'sweep'}"], root)
    assert swept.returncode == 0, swept.stderr[-3000:]
    assert len(list((root / "sweep").glob("*/metrics.json"))) == 2

    checkpoint = root / "run" / "checkpoints" / "last.ckpt"
    evaluated = run(["mnist_exp.evaluate", *search, "data=synthetic", f"paths.data_dir={data.data_dir}",
                     f"ckpt_path={checkpoint}"], root)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert f"test accuracy {metrics['test/acc']:.4f}" in evaluated.stdout  # the same model, rebuilt from the checkpoint

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
    refused = run(["mnist_exp.evaluate", f"hydra.searchpath=[file://{only_data.parent}]", "data=synthetic",
                   f"paths.data_dir={data.data_dir}", f"ckpt_path={checkpoint}", f"paths.log_dir={root / 'outputs'}"], root)
    assert refused.returncode == 1 and "my_models.mlp.MLP" in refused.stderr
    assert len([line for line in refused.stderr.splitlines() if line.strip()]) == 1
