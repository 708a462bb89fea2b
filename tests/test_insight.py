"""Seeing inside the model: calibration and temperature scaling, Integrated Gradients, the corruptions,
the report's figures, filters, feature maps and embeddings in TensorBoard, robustness=true, predict's
attribution maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mnist_exp.analysis.attributions import integrated_gradients
from mnist_exp.analysis.figures import confusion_figure
from mnist_exp.analysis.insight import add_embedding
from mnist_exp.analysis.robustness import CORRUPTIONS, SEVERITIES, corrupt
from mnist_exp.data.idx import read_idx
from mnist_exp.data.transforms import BatchTransform
from mnist_exp.training.calibration import expected_calibration_error, fit_temperature, reliability_bins
from tests.helpers import FILES, load_events, run_cli, synthetic_digits


def test_temperature_scaling_finds_the_temperature_that_made_a_model_overconfident():
    generator = torch.Generator().manual_seed(0)
    honest = torch.randn(20_000, 10, generator=generator) * 2
    labels = torch.multinomial(honest.softmax(dim=1), 1, generator=generator).squeeze(1)  # calibrated by design
    overconfident = honest * 2.5
    assert fit_temperature(overconfident, labels) == pytest.approx(2.5, rel=0.05)
    before, after = (
        expected_calibration_error(overconfident, labels),
        expected_calibration_error(overconfident, labels, 2.5),
    )
    assert before > 0.1 and after < 0.02 and after < before
    bins = reliability_bins(overconfident, labels)
    assert sum(b["count"] for b in bins) == 20_000 and len(bins) == 15


class Tiny(nn.Module):
    """What integrated_gradients needs of a module: its device, its input transform, logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.transform = BatchTransform()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 28 * 28, 10))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, x):
        return self.net(x)


def test_integrated_gradients_add_up_to_the_logit_difference_from_an_empty_image():
    module = Tiny()
    images, _ = synthetic_digits(4, seed=3)
    inputs = module.transform(torch.from_numpy(images))
    towards = {"these": torch.tensor([0, 3, 5, 9]), "others": torch.tensor([1, 1, 2, 8])}
    both = dict(zip(towards, integrated_gradients(module, inputs, *towards.values()), strict=True))
    for name, classes in towards.items():
        with torch.no_grad():
            empty = module(module.transform(torch.zeros(4, 28, 28))).gather(1, classes[:, None]).squeeze(1)
            difference = module(inputs).gather(1, classes[:, None]).squeeze(1) - empty
        assert both[name].shape == (4, 28, 28)
        # Completeness up to the 16-step quadrature's error on this untrained net (6% at most here; a wrong
        # baseline, target or channel sum is off by the whole difference).
        assert both[name].sum(dim=(1, 2)) == pytest.approx(difference, abs=0.1 * float(difference.abs().max()))
        (alone,) = integrated_gradients(module, inputs, classes)  # one call for both classes: the same maps
        torch.testing.assert_close(both[name], alone)


def test_every_corruption_is_seeded_bounded_and_worse_at_higher_severity():
    images = torch.from_numpy(synthetic_digits(16, seed=4)[0])
    clean = images.float().unsqueeze(1)
    for name in CORRUPTIONS:
        changes = []
        for severity in SEVERITIES:
            out = corrupt(images, name, severity, seed=7)
            assert out.shape == (16, 1, 28, 28) and out.min() >= 0 and out.max() <= 255, name
            assert torch.equal(out, corrupt(images, name, severity, seed=7)), name  # the same digits, the same way
            changes.append(float((out - clean).abs().mean()))
        assert changes[0] > 0 and changes[-1] > changes[0], (name, changes)


def test_the_confusion_matrix_colours_errors_on_their_own_scale():
    matrix = torch.zeros(10, 10, dtype=torch.long)
    matrix.fill_diagonal_(1000)
    matrix[4, 9], matrix[7, 2] = 3, 30
    cell = 34
    pixels = np.asarray(confusion_figure(matrix, cell=cell))
    top, left = 34, 52  # the figure's margins (mnist_exp/analysis/figures.py)

    def colour(row: int, column: int) -> tuple:  # a cell's corner, away from its label
        return tuple(int(v) for v in pixels[top + row * cell + 2, left + column * cell + 2])

    assert colour(4, 9) != colour(7, 2) and colour(4, 9)[0] > colour(4, 9)[2]  # reds, 3 lighter than 30
    assert sum(colour(4, 9)) > sum(colour(7, 2))
    assert colour(0, 0) == (217, 217, 217) and colour(0, 1) == (255, 255, 255)  # the diagonal grey, no error white


@pytest.mark.slow
def test_a_training_run_shows_what_the_model_learned(synthetic_run):
    data, run_dir = synthetic_run
    for name in ("filters.png", "feature_maps.png", "reliability.png", "mistakes.png", "confusion_matrix.png"):
        assert (run_dir / name).stat().st_size > 500, name
    report = json.loads((run_dir / "test_report.json").read_text())
    calibration = report["calibration"]
    assert 0 <= calibration["ece"] <= 1 and sum(b["count"] for b in calibration["bins"]) == 200
    assert json.loads((run_dir / "metrics.json").read_text())["test/ece"] == pytest.approx(calibration["ece"])
    mistakes = report["mistakes"]
    assert [m["confidence"] for m in mistakes] == sorted((m["confidence"] for m in mistakes), reverse=True)
    test_labels = read_idx(data.folder / FILES["test_labels"])  # as written, flipped labels included
    assert all(int(test_labels[m["index"]]) == m["true"] != m["predicted"] for m in mistakes)
    events = load_events(run_dir)
    images = set(events.Tags()["images"])
    assert {"insight/filters", "insight/feature_maps/conv1", "insight/feature_maps/conv2"} <= images
    assert {"test/mistakes", "test/reliability", "test/confusion_matrix"} <= images
    assert len(events.Images("insight/filters")) == 2  # one per epoch (TINY_RUN: 2)
    assert "test/ece" in events.Tags()["scalars"]
    (embedding,) = projector_config(run_dir).embeddings
    metadata = (run_dir / embedding.metadata_path).read_text().splitlines()
    assert metadata[0] == "true\tpredicted" and len(metadata) == 201
    assert list(embedding.tensor_shape) == [200, 128]  # the test digits, the hidden units
    assert (run_dir / embedding.tensor_path).stat().st_size == 200 * 128 * 4  # float32
    assert Image.open(run_dir / embedding.sprite.image_path).size == (15 * 28, 15 * 28)  # 200 digits, 15 a row


def projector_config(log_dir: Path):
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    return text_format.Parse((log_dir / "projector_config.pbtxt").read_text(), ProjectorConfig())


def test_the_projector_gets_features_as_bytes_or_as_text_when_bytes_would_read_as_text(tmp_path):
    """The projector reads a tensor file as text first: features that happen to be valid UTF-8 (all zeros,
    from a dead layer) are written as text, the rest as float32 bytes with their shape."""
    images = torch.rand(5, 1, 28, 28)
    live = torch.rand(5, 3) + 1
    for step, features in ((1, live), (2, torch.zeros(5, 3))):
        add_embedding(tmp_path, features, [["true"], *([d] for d in range(5))], images, tag="digits", step=step)
    written, dead = projector_config(tmp_path).embeddings  # each kept, in the order written
    assert written.tensor_path.endswith(".bytes") and list(written.tensor_shape) == [5, 3]
    assert np.array_equal(np.fromfile(tmp_path / written.tensor_path, dtype=np.float32).reshape(5, 3), live.numpy())
    assert dead.tensor_path.endswith(".tsv") and (tmp_path / dead.tensor_path).read_text() == "0\t0\t0\n" * 5
    sprite = np.asarray(Image.open(tmp_path / written.sprite.image_path))
    assert sprite.shape == (3 * 28, 3 * 28)  # 5 digits on a 3 x 3 grid
    assert np.array_equal(sprite[28:56, 28:56], (images[4, 0] * 255).round().to(torch.uint8).numpy())


def test_a_sprite_equal_to_the_previous_one_reuses_its_png_and_another_is_encoded_anew(tmp_path, monkeypatch):
    """A sweep's jobs show the same test digits: the second job's sprite is the first one's PNG, not a new
    encoding; different digits get their own."""
    encoded = []
    save = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", lambda image, *a, **k: encoded.append(image.size) or save(image, *a, **k))
    digits, others = torch.rand(5, 1, 28, 28), torch.rand(5, 1, 28, 28)
    metadata = [["true"], *([d] for d in range(5))]
    for step, images in ((1, digits), (2, digits), (3, others)):
        add_embedding(tmp_path / f"job{step}", torch.rand(5, 3) + 1, metadata, images, tag="digits", step=step)
    assert len(encoded) == 2  # the first job's digits, then the other digits: the second job reused the first PNG
    sprites = [
        np.asarray(
            Image.open(
                tmp_path / f"job{step}" / projector_config(tmp_path / f"job{step}").embeddings[0].sprite.image_path
            )
        )
        for step in (1, 2, 3)
    ]
    assert np.array_equal(sprites[0], sprites[1]) and not np.array_equal(sprites[0], sprites[2])
    assert np.array_equal(sprites[2][28:56, 28:56], (others[4, 0] * 255).round().to(torch.uint8).numpy())


@pytest.mark.slow
def test_calibrate_fits_a_temperature_that_predict_and_export_use(synthetic, tmp_path):
    from mnist_exp.models.inference import RawImageClassifier, load_classifier
    from mnist_exp.records.checkpoints import resolve

    run_dir = tmp_path / "run"
    result = run_cli(
        [
            *synthetic.overrides(),
            "trainer.max_epochs=2",
            "data.batch_size=32",
            "trainer.accelerator=cpu",
            "calibrate=true",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    temperature = metrics["calibration"]["temperature"]
    assert temperature > 0 and temperature != 1.0
    checkpoint = resolve(metrics["checkpoint"], tmp_path)
    assert checkpoint.contents["calibration"]["temperature"] == pytest.approx(temperature, abs=1e-4)
    report = json.loads((run_dir / "test_report.json").read_text())["calibration"]
    assert report["temperature"] == pytest.approx(temperature, abs=1e-4) and "ece_temperature_scaled" in report

    module = load_classifier(checkpoint)
    images = torch.from_numpy(synthetic_digits(8, seed=5)[0])
    with torch.no_grad():
        logits = module(module.transform(images))
        expected = (logits / module.temperature).softmax(dim=1)
        exported = RawImageClassifier(module.net, module.transform, module.temperature)(images.float().unsqueeze(1))
    assert module.predict_proba(images) == pytest.approx(expected, abs=1e-5)
    assert exported == pytest.approx(expected, abs=1e-5)


@pytest.mark.slow
def test_evaluate_robustness_writes_accuracy_by_corruption_and_severity(synthetic_run, tmp_path):
    data, run_dir = synthetic_run
    out = tmp_path / "eval"
    checkpoint = json.loads((run_dir / "metrics.json").read_text())["checkpoint"]
    result = run_cli(
        [f"ckpt_path={checkpoint}", *data.overrides(), "robustness=true", f"hydra.run.dir={out}"],
        module="mnist_exp.evaluate",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    robustness = json.loads((out / "robustness.json").read_text())
    assert set(robustness) == {"clean", "mean_corrupted", *CORRUPTIONS}
    assert all(set(robustness[name]) == {"1", "2", "3", "4", "5"} for name in CORRUPTIONS)
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert robustness["clean"] == pytest.approx(evaluation["test/acc"], abs=1e-4)
    assert evaluation["robustness"]["mean_corrupted"] == robustness["mean_corrupted"]
    for name in ("robustness.png", "robustness_examples.png"):
        assert (out / name).stat().st_size > 1000
    events = load_events(out)
    assert {f"robustness/{name}" for name in CORRUPTIONS} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("robustness/rotation")] == [1, 2, 3, 4, 5]
    assert "[56/56] inversion severity 5" in result.stderr + result.stdout  # progress, step by step


@pytest.mark.slow
def test_predict_writes_an_attribution_map_for_each_file(synthetic_run, tmp_path):
    from PIL import Image

    _, run_dir = synthetic_run
    images, _ = synthetic_digits(3, seed=6)
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"digit{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "why"
    result = run_cli(
        [f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"inputs={tmp_path}", f"attributions={out}"],
        module="mnist_exp.predict",
    )
    assert result.returncode == 1  # the broken file is reported; the others are predicted and explained
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    explained = [row for row in rows if "attribution" in row]
    assert len(explained) == 3 and all(Path(row["attribution"]).is_file() for row in explained)
    assert sorted(p.name for p in out.iterdir()) == ["1_digit0.png", "2_digit1.png", "3_digit2.png"]
    assert Image.open(out / "1_digit0.png").size == (8 * (3 * 28 + 2), 8 * 28)


@pytest.mark.slow
def test_a_model_trained_with_the_robust_augmentation_loads_for_evaluate_predict_and_export(synthetic, tmp_path):
    from mnist_exp.models.inference import load_classifier

    run_dir = tmp_path / "run"
    result = run_cli(
        [
            *synthetic.overrides(),
            "transforms=robust",
            "trainer.max_epochs=1",
            "data.batch_size=32",
            "trainer.accelerator=cpu",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # kornia's RandomContrast keeps a buffer in the state dict; the rebuilt model has no augmentation
    module = load_classifier(run_dir / "checkpoints" / "last.ckpt")
    assert module.transform.augment is None
    assert module.predict_proba(torch.from_numpy(synthetic_digits(2, seed=8)[0])).shape == (2, 10)
