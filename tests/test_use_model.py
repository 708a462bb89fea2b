"""Evaluate, predict and export trained checkpoints."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_exp import PROJECT_ROOT
from mnist_exp.data.idx import read_idx
from mnist_exp.models.inference import CheckpointError, load_classifier
from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def best_checkpoint(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())["checkpoint"]


def test_training_runs_log_the_test_report(synthetic_run):
    _, run_dir = synthetic_run
    for name in ("test_report.json", "confusion_matrix.png", "mistakes.png"):
        assert (run_dir / name).exists(), name
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0}).Reload()
    assert {"test/confusion_matrix", "test/mistakes"} <= set(events.Tags()["images"])


def test_evaluate_writes_every_artifact_and_matches_the_training_test(synthetic_run, tmp_path):
    data, run_dir = synthetic_run
    out = tmp_path / "eval"
    result = run_cli(
        ["ckpt_path=" + best_checkpoint(run_dir), *data.overrides()[:2], data.overrides()[2], f"hydra.run.dir={out}"],
        module="mnist_exp.evaluate",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "evaluation.json").read_text())
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert report["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)
    assert report["test/loss"] == pytest.approx(trained["test/loss"], rel=1e-5)  # the same weights, not just as good
    assert set(report["per_class"]) == {str(d) for d in range(10)}
    assert {"precision", "recall", "f1", "support"} <= set(report["per_class"]["0"])
    assert sum(r["support"] for r in report["per_class"].values()) == 200
    assert np.array(report["confusion_matrix"]).sum() == 200
    for name in ("confusion_matrix.png", "mistakes.png"):
        assert (out / name).stat().st_size > 1000, name
    assert "confusion matrix (rows: true, columns: predicted)" in result.stdout


def test_ckpt_path_last_is_pinned_to_the_checkpoint_that_was_checked(synthetic_run, tmp_path):
    import shutil

    data, run_dir = synthetic_run
    log_dir = tmp_path / "outputs"
    shutil.copytree(run_dir, log_dir / "2026-11-27" / "10-31-07")
    last = log_dir / "2026-11-27" / "10-31-07" / "checkpoints" / "last.ckpt"
    out = tmp_path / "eval"
    result = run_cli(
        ["ckpt_path=last", *data.overrides(), f"paths.log_dir={log_dir}", f"hydra.run.dir={out}"],
        module="mnist_exp.evaluate",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "evaluation.json").read_text())["checkpoint"] == str(last)
    assert f"ckpt_path: {last}" in (out / ".hydra" / "config.yaml").read_text()  # the run says which file `last` was


def test_evaluate_refuses_a_checkpoint_that_does_not_match_the_requested_model(synthetic_run, tmp_path):
    data, run_dir = synthetic_run
    out = tmp_path / "eval"
    result = run_cli(
        ["ckpt_path=" + best_checkpoint(run_dir), *data.overrides(), "model.channels=32", f"hydra.run.dir={out}"],
        module="mnist_exp.evaluate",
    )
    assert result.returncode == 1
    assert (
        "does not match the requested model: model.channels=16 in the checkpoint but 32 requested"
        in result.stdout + result.stderr
    )
    assert not out.exists()  # refused before Hydra made the run dir
    assert not (out / "evaluation.json").exists()


def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path):
    bogus = tmp_path / "model.ckpt"
    bogus.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_classifier(bogus)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_classifier(tmp_path / "missing.ckpt")


def test_predict_reports_bad_files_and_still_predicts_the_rest(synthetic_run, tmp_path):
    data, run_dir = synthetic_run
    images = read_idx(data.folder / "t10k-images-idx3-ubyte")[:3]
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"good{i}.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("no pixels here")
    inputs = f"inputs=[{tmp_path},{tmp_path / 'missing.png'}]"
    result = run_cli(["ckpt_path=" + best_checkpoint(run_dir), inputs, "--top-k", "2"], module="mnist_exp.predict")
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {os.path.basename(r["file"]): r for r in rows}
    assert set(by_name) == {"good0.png", "good1.png", "good2.png", "empty.png", "text.png", "missing.png"}
    for name in ("good0.png", "good1.png", "good2.png"):
        row = by_name[name]
        assert 0 <= row["digit"] <= 9 and len(row["top_k"]) == 2 and len(row["probabilities"]) == 10
        assert abs(sum(row["probabilities"]) - 1) < 1e-3
    assert "empty file" in by_name["empty.png"]["error"]
    assert "not a readable image" in by_name["text.png"]["error"]
    assert "no such file" in by_name["missing.png"]["error"]
    assert "3 of 6 files could not be predicted" in result.stderr


def real_test_digits(count=300):
    images = read_idx(PROJECT_ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte")[:count]
    labels = read_idx(PROJECT_ROOT / "data" / "mnist" / "t10k-labels-idx1-ubyte")[:count]
    return images, labels


def test_predict_on_rerendered_real_digits_keeps_the_checkpoint_accuracy(real_mnist_run, tmp_path):
    checkpoint = best_checkpoint(real_mnist_run)
    images, labels = real_test_digits()
    module = load_classifier(checkpoint)
    tensor_accuracy = float((module.predict_proba(torch.from_numpy(images.copy())).argmax(1).numpy() == labels).mean())
    for i, image in enumerate(images):  # dark ink on white, 64x64, every third one as JPEG, some RGB
        picture = Image.fromarray(255 - image).resize((64, 64), Image.BILINEAR)
        picture = picture.convert("RGB") if i % 2 else picture
        picture.save(tmp_path / f"{i:04d}.{'jpg' if i % 3 == 0 else 'png'}")
    result = run_cli(["ckpt_path=" + checkpoint, f"inputs={tmp_path}/*"], module="mnist_exp.predict")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    predicted = np.array([r["digit"] for r in sorted(rows, key=lambda r: r["file"])])
    file_accuracy = float((predicted == labels).mean())
    print(
        f"predict accuracy on {len(labels)} re-rendered test digits: "
        f"files {file_accuracy:.4f}, tensors {tensor_accuracy:.4f}"
    )
    assert file_accuracy >= 0.97 * tensor_accuracy


LOAD_PT2 = """
import sys, numpy, torch
model = torch.export.load(sys.argv[1]).module()  # the archive alone: no mnist_exp, no model class
with torch.no_grad():
    for batch in (numpy.load(sys.argv[2]), numpy.load(sys.argv[2])[:1]):
        numpy.save(sys.argv[3] if len(batch) > 1 else sys.argv[4], model(torch.from_numpy(batch)).numpy())
assert not [name for name in sys.modules if name.startswith("mnist_exp")]
"""


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_exported_model_matches_the_checkpoint_on_real_test_images(real_mnist_run, tmp_path, fmt):
    checkpoint = best_checkpoint(real_mnist_run)
    target = tmp_path / f"model.{fmt}"
    result = run_cli(["ckpt_path=" + checkpoint, f"format={fmt}", f"output={target}"], module="mnist_exp.export")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"Wrote {target} ({fmt})")
    images, _ = real_test_digits(500)
    expected = load_classifier(checkpoint).predict_proba(torch.from_numpy(images.copy())).numpy()
    raw = images[:, None].astype(np.float32)  # raw 0..255 pixels
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        got, one = (session.run(["probabilities"], {"images": batch})[0] for batch in (raw, raw[:1]))
    else:  # in a fresh interpreter that never imports the project
        np.save(tmp_path / "raw.npy", raw)
        outputs = [tmp_path / "got.npy", tmp_path / "one.npy"]
        loaded = subprocess.run(
            [sys.executable, "-c", LOAD_PT2, str(target), str(tmp_path / "raw.npy"), *map(str, outputs)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        got, one = (np.load(path) for path in outputs)
    assert got.shape == (500, 10) and one.shape == (1, 10)  # any batch size
    assert np.abs(got - expected).max() <= 1e-4 and np.abs(one - expected[:1]).max() <= 1e-4


def test_torchscript_is_refused_with_what_to_use_instead(tmp_path):
    result = run_cli([f"ckpt_path={tmp_path / 'any.ckpt'}", "format=torchscript"], module="mnist_exp.export")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: format=torchscript: TorchScript is deprecated in PyTorch; format=pt2 writes a torch.export archive "
        "instead"
    )


def test_evaluate_tests_on_the_checkpoints_own_dataset_unless_told(synthetic_run, tmp_path):
    """A checkpoint trained on another dataset (here the synthetic digits, as Fashion-MNIST for a user) is
    tested on that dataset when no data= is given, and evaluate says which; data= given wins."""
    data, run_dir = synthetic_run
    trained = json.loads((run_dir / "metrics.json").read_text())
    out = tmp_path / "eval"
    # no data=synthetic and no search path for it: the run's saved config names the dataset
    result = run_cli(
        [f"ckpt_path={trained['checkpoint']}", f"paths.data_dir={data.data_dir}", f"hydra.run.dir={out}"],
        module="mnist_exp.evaluate",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data=synthetic: the dataset the checkpoint was trained on" in result.stderr
    report = json.loads((out / "evaluation.json").read_text())
    assert report["dataset"] == "synthetic" and report["test/loss"] == pytest.approx(trained["test/loss"], rel=1e-5)
    assert sum(r["support"] for r in report["per_class"].values()) == 200  # the synthetic test set, not MNIST's

    # the checkpoint alone, away from its run dir: its recorded data files are not MNIST's, so it is refused
    alone = tmp_path / "alone.ckpt"
    alone.write_bytes(Path(trained["checkpoint"]).read_bytes())
    refused = run_cli([f"ckpt_path={alone}", f"hydra.run.dir={tmp_path / 'refused'}"], module="mnist_exp.evaluate")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"Error: ckpt_path={alone} was trained on other data files than data=mnist ("
        + ", ".join(sorted(data.checksums))
        + "); name its dataset with data=OPTION (mnist_exp/conf/data/)"
    ]


def test_predicts_table_shows_every_file_name_whole(synthetic_run, tmp_path):
    data, run_dir = synthetic_run
    folder = tmp_path / "my_digits"
    folder.mkdir()
    names = [f"white_on_black_scan_of_a_handwritten_digit_number_{i}.png" for i in range(2)]
    for name, image in zip(names, read_idx(data.folder / "t10k-images-idx3-ubyte")[:2], strict=True):
        Image.fromarray(image).save(folder / name)
    args = ["ckpt_path=" + best_checkpoint(run_dir), f"inputs={folder}"]
    result = run_cli(args, module="mnist_exp.predict", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"predictions ({folder}/)" in result.stderr
    for name in names:
        assert name in result.stderr, result.stderr  # below the folder they share, never cut


def test_ckpt_path_best_is_the_sweeps_best_run_not_the_last_to_finish(synthetic_run, tmp_path):
    """After a sweep, `ckpt_path=best` is the checkpoint that the job with the best validation accuracy
    tested, whichever finished last; training refuses it (a resume continues a stopped run)."""
    import shutil

    data, run_dir = synthetic_run
    log_dir = tmp_path / "outputs"
    jobs = {}
    swept = (("0_optimizer.lr=0.001", 0.93), ("1_optimizer.lr=0.003", 0.95), ("2_optimizer.lr=0.01", 0.91))
    for name, val_acc in swept:
        job = jobs[name] = log_dir / "multirun" / "2026-12-04" / "14-00-00" / name
        shutil.copytree(run_dir, job)
        metrics = json.loads((job / "metrics.json").read_text())
        tested = job / "checkpoints" / Path(metrics["checkpoint"]).name
        metrics.update({"val/acc_best": val_acc, "checkpoint": str(tested), "tested": str(tested)})
        (job / "metrics.json").write_text(json.dumps(metrics))
    Image.fromarray(read_idx(data.folder / "t10k-images-idx3-ubyte")[0]).save(tmp_path / "digit.png")
    result = run_cli(
        ["ckpt_path=best", f"inputs={tmp_path / 'digit.png'}", f"paths.log_dir={log_dir}"], module="mnist_exp.predict"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tested_name = Path(json.loads((run_dir / "metrics.json").read_text())["checkpoint"]).name
    best = jobs["1_optimizer.lr=0.003"] / "checkpoints" / tested_name
    assert f"ckpt_path=best: {best}" in result.stderr  # not job 2, the last to finish
    refused = run_cli(["ckpt_path=best", f"paths.log_dir={log_dir}"])
    assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
        "Error: ckpt_path=best names a finished run's checkpoint (for evaluate, predict and export); "
        "to resume a stopped run give ckpt_path=last or its last.ckpt"
    ]
