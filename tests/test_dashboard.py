"""Watching a search: optuna-dashboard on a real study while its sweep runs, seen in a real headless
browser (tests/browser.py), the way docs/sweeps.md says to open it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from optuna.trial import TrialState

from mnist_exp import PROJECT_ROOT
from mnist_exp.study.storage import load_study
from tests.browser import rendered_page, require_chromium
from tests.servers import http_server, stop_process

pytestmark = pytest.mark.slow


@contextmanager
def dashboard(storage: str, log: Path):
    """`optuna-dashboard STORAGE` on 127.0.0.1 and a free port, stopped when the block ends."""
    command = Path(sys.executable).with_name("optuna-dashboard")
    with http_server(
        lambda port: [str(command), storage, "--host", "127.0.0.1", "--port", str(port)], "/api/studies", log
    ) as url:
        yield url


def text_of(dom: str) -> str:
    without_code = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", without_code))


def wait_for(condition, what: str, process: subprocess.Popen, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the sweep ended before {what}: " + process.communicate()[0][-3000:]
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.5)


def test_the_dashboard_shows_a_running_search_its_trials_and_history(synthetic, tmp_path):
    require_chromium()
    sweep_dir = tmp_path / "sweep"
    journal = sweep_dir / "optuna.journal"  # a sweep given no storage keeps its study here
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnist_exp",
            *synthetic.overrides(),
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=2",
            "trainer.max_epochs=3",
            # trial 1 waits before its third epoch until the pages are read: still running, by construction
            "+callbacks.hold._target_=tests.callbacks.HoldAtEpoch",
            "+callbacks.hold.epoch=2",
            "+callbacks.hold.job=1",
            f"+callbacks.hold.until={sweep_dir / 'pages-read'}",
            "data.batch_size=32",
            "trainer.accelerator=cpu",
            "callbacks.test_report.mistakes=4",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def states() -> list:
            if not journal.is_file():
                return []
            try:
                return load_study(str(journal), "mnist-exp").get_trials(deepcopy=False)
            except Exception:  # noqa: BLE001  (the study is not created yet)
                return []

        def second_trial_reporting() -> bool:
            trials = states()
            return len(trials) == 2 and trials[1].state == TrialState.RUNNING and len(trials[1].intermediate_values) > 1

        wait_for(second_trial_reporting, "second trial reporting its epochs", sweep)
        with dashboard(str(journal), tmp_path / "dashboard.log") as url:
            study_dom = rendered_page(f"{url}/dashboard/studies/0")
            trials_page = text_of(rendered_page(f"{url}/dashboard/studies/0/trials"))
        (sweep_dir / "pages-read").touch()  # trial 1 goes on; the sweep ends as any does
        output, _ = sweep.communicate(timeout=120)
        assert sweep.returncode == 0, output[-3000:]
    finally:
        stop_process(sweep)

    study_page = text_of(study_dom)
    assert "mnist-exp" in study_page and "History" in study_page
    assert "js-plotly-plot" in study_dom and 'class="point"' in study_dom  # plotted: the finished trial's value
    assert "val/acc_best" in study_page  # the history plot's axis: the objective, by its name
    assert "Intermediate values" in study_page  # val/acc reported each epoch, for the pruner
    assert "Trial 0 Complete" in trials_page and "Trial 1 Running" in trials_page
    assert "model.channels" in trials_page and "mnist_exp:run_dir" in trials_page
