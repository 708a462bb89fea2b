"""What TensorBoard shows: the experiment's parameters in HParams, asked of a real TensorBoard server."""

import contextlib
import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from mnist_exp.records.hparams import experiment_params
from tests.helpers import compose, run_cli
from tests.servers import http_server

LEFT_OUT = ("paths.", "callbacks.", "logger.", "hydra", "_target_", "dirpath", "data.files", "data.sources")


def test_hparams_are_the_experiment_with_the_runs_own_overrides_first():
    overrides = ["optimizer=sgd", "model.channels=32", "experiment=fast"]
    cfg = compose(overrides)
    choices = {
        "experiment": "fast",
        "optimizer": "sgd",
        "model": "cnn",
        "data": "mnist",
        "scheduler": "onecycle",
        "trainer": "default",
        "logger": "tensorboard",
        "callbacks": "default",
        "paths": "default",
        "hydra/launcher": "basic",
    }
    params = experiment_params(cfg, choices, ["optimizer", "model.channels", "experiment"], "32-true")
    assert list(params)[:3] == ["optimizer", "model.channels", "experiment"]
    assert params["optimizer"] == "sgd" and params["model.channels"] == 32 and params["experiment"] == "fast"
    assert {
        "optimizer.lr",
        "optimizer.momentum",
        "scheduler.scheduler.max_lr",
        "data.batch_size",
        "seed",
        "trainer.max_epochs",
        "module.label_smoothing",
        "model",
        "scheduler",
        "trainer.precision",
    } <= set(params)
    assert not [key for key in params if any(part in key for part in LEFT_OUT)]
    assert "logger" not in params and "callbacks" not in params and "paths" not in params
    assert all(isinstance(value, (bool, int, float, str)) for value in params.values())


def ask(port: int, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def tensorboard_server(tmp_path):
    """Start `tensorboard --logdir DIR` on loopback; yields start(DIR) -> port; stopped at the end, also on failure."""
    with contextlib.ExitStack() as servers:

        def start(logdir: Path) -> int:
            def command(port: int) -> list[str]:
                return [
                    sys.executable,
                    "-m",
                    "tensorboard.main",
                    "--logdir",
                    str(logdir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--load_fast",
                    "false",
                    "--reload_interval",
                    "1",
                ]

            url = servers.enter_context(http_server(command, "/data/runs", tmp_path / "tb.log"))
            return int(url.rsplit(":", 1)[1])

        yield start


def wait_for(port: int, path: str, ready, timeout: float = 90):
    """Ask `path` until `ready(answer)` holds (TensorBoard loads event files in the background)."""
    deadline, answer = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            answer = ask(port, path)
            if ready(answer):
                return answer
        except OSError:  # not listening yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"TensorBoard on port {port}: {path} not ready in {timeout} s; last answer {answer}")


@pytest.mark.slow
def test_a_sweeps_hparams_table_shows_its_swept_keys_and_metrics_first(synthetic, tmp_path, tensorboard_server):
    sweep = tmp_path / "sweep"
    run = ["trainer.max_epochs=2", "data.batch_size=32", "trainer.accelerator=cpu", "callbacks.test_report.mistakes=4"]
    result = run_cli(["-m", *synthetic.overrides(), *run, "model.channels=4,8", f"hydra.sweep.dir={sweep}"])
    assert result.returncode == 0, result.stderr[-3000:]
    port = tensorboard_server(sweep)
    job_dirs = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert sorted(wait_for(port, "/data/runs", lambda runs: len(runs) >= 2)) == job_dirs
    wanted = {"train/loss", "val/loss", "train/acc", "val/acc", "test/acc", "fit_seconds"}
    wait_for(port, "/data/plugin/scalars/tags", lambda tags: all(wanted <= set(tags.get(job, ())) for job in job_dirs))

    experiment = ask(port, "/data/plugin/hparams/experiment", {"experimentName": ""})
    columns = [info["name"] for info in experiment["hparamInfos"]]
    assert {
        "optimizer",
        "model",
        "scheduler",
        "data",
        "optimizer.lr",
        "data.batch_size",
        "seed",
        "trainer.max_epochs",
        "trainer.precision",
    } <= set(columns)
    assert not [c for c in columns if any(part in c for part in LEFT_OUT)], columns
    assert len(columns) < 40
    # the five the table shows before a user ticks more: the swept key, the run's name, what tells runs apart
    shown = {info["name"] for info in experiment["hparamInfos"] if info.get("differs")}
    assert shown == {"model.channels", "run", "optimizer", "optimizer.lr", "data.batch_size"}
    metric_names = [info["name"]["tag"] for info in experiment["metricInfos"]]
    assert set(metric_names) == {"test/acc", "test/loss", "val/acc_best", "fit_seconds"}

    for job in job_dirs:  # the values TensorBoard serves are the run's own
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        served = ask(port, f"/data/plugin/scalars/scalars?run={urllib.parse.quote(job)}&tag=test%2Facc")
        assert served[-1][2] == pytest.approx(metrics["test/acc"], abs=1e-6)

    layout = ask(port, "/data/plugin/custom_scalars/layout")
    charts = {
        chart["title"]: chart["multiline"]["tag"] for category in layout["category"] for chart in category["chart"]
    }
    assert charts == {"loss": ["^train/loss$", "^val/loss$"], "accuracy": ["^train/acc$", "^val/acc$"]}


@pytest.mark.slow
def test_a_browser_sees_the_projector_filters_feature_maps_and_attributions(synthetic_run, tensorboard_server):
    """A real headless Chromium on a real TensorBoard: what docs/inside.md shows a learner."""
    from urllib.parse import parse_qs, urlparse

    from tests.browser import requested_urls, require_chromium

    require_chromium()
    _, run_dir = synthetic_run
    port = tensorboard_server(run_dir)
    wait_for(port, "/data/plugin/projector/runs", lambda runs: runs == ["."])
    # The projector runs in an iframe: what its page fetched shows it loaded the embedding, sprite and labels.
    fetched = [urlparse(u) for u in requested_urls(f"http://127.0.0.1:{port}/#projector", wait_ms=20_000)]
    projector = {u.path.rsplit("/", 1)[1]: parse_qs(u.query) for u in fetched if "/plugin/projector/" in u.path}
    for what in ("tensor", "metadata", "sprite_image"):
        assert projector[what]["name"][0].startswith("test_penultimate"), what
    name = urllib.parse.quote(projector["tensor"]["name"][0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/projector/tensor?run=.&name={name}") as served:
        assert served.read() == next(run_dir.glob("*/test_penultimate/tensors.bytes")).read_bytes()  # read as written
    # (the images dashboard draws the cards in view: the tag filter brings the test report's up)
    drawn = requested_urls(f"http://127.0.0.1:{port}/#images&tagFilter=test", wait_ms=20_000, size="1400,2000")
    shown = {parse_qs(urlparse(u).query)["tag"][0] for u in drawn if "/plugin/images/images?" in u}
    assert {"insight/filters", "insight/feature_maps/conv1", "test/mistakes", "test/reliability"} <= shown
    assert any("/plugin/images/individualImage?" in u for u in drawn)  # and the images themselves


def test_hparams_shows_the_optimizer_and_the_runs_name_by_default():
    """TensorBoard shows five columns until asked for more: an SGD run and an Adam run must not read alike."""
    from mnist_exp.records.hparams import SHOWN_BY_TENSORBOARD, shown_columns

    cfg = compose([])
    default = experiment_params(cfg, {"optimizer": "sgd", "model": "cnn"}, [], "32-true")
    adam = experiment_params(cfg, {"optimizer": "adam", "model": "cnn"}, ["optimizer"], "32-true")
    for params, leading in ((default, []), (adam, ["optimizer"])):
        shown = shown_columns({"run": "14-28-10", **params}, leading)
        assert {"run", "optimizer", "optimizer.lr"} <= shown and len(shown) == SHOWN_BY_TENSORBOARD
    assert default["experiment"] == "none"  # the column exists whichever run TensorBoard takes the columns from
    swept = ["model.channels", "optimizer.lr", "data.batch_size", "seed", "trainer.max_epochs", "model.dropout"]
    assert shown_columns({"run": "x", **default}, swept) == set(swept)  # every swept key, even past five

    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    from mnist_exp.records.hparams import hparams_summaries

    experiment, _, _ = hparams_summaries(default, {"optimizer", "seed"})
    infos = HParamsPluginData.FromString(experiment.value[0].metadata.plugin_data.content).experiment.hparam_infos
    assert {info.name for info in infos if info.differs} == {"optimizer", "seed"}  # those marked, no others


def test_hparams_shows_whole_numbers_as_written():
    """TensorBoard shows a number as a double (16.000): channels, batch sizes and seeds go as text."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    from mnist_exp.records.hparams import hparams_summaries

    _, start, _ = hparams_summaries({"model.channels": 16, "optimizer.lr": 0.003, "model.batch_norm": True}, set())
    values = HParamsPluginData.FromString(start.value[0].metadata.plugin_data.content).session_start_info.hparams
    assert values["model.channels"].string_value == "16" and values["optimizer.lr"].number_value == 0.003
    assert values["model.batch_norm"].string_value == "true"
