"""mnist-exp-reproduce: a finished run's exact config again, its metrics compared, provenance differences said."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from tests.helpers import TINY_RUN, run_cli

pytestmark = pytest.mark.slow  # two real (tiny) runs


def test_a_run_reproduces_bit_for_bit_and_a_changed_result_is_caught(synthetic, tmp_path):
    original = tmp_path / "runs" / "original"
    tiny = [*TINY_RUN, "trainer.max_epochs=1"]  # reproduced three times: one epoch each
    first = run_cli([*synthetic.overrides(), *tiny, "model.dropout=0.2", f"hydra.run.dir={original}"])
    assert first.returncode == 0, first.stderr[-3000:]

    # Today's defaults are not the run's: the saved config is what runs again (dropout, epochs, data).
    again = run_cli([str(original)], module="mnist_exp.reproduce", as_script=True)
    assert again.returncode == 0, again.stderr[-3000:]
    reproduced = tmp_path / "runs" / "original-reproduced"
    assert "provenance: the same commit, diff, versions, hardware and precision" in again.stdout
    assert "(bit for bit); new run in" in again.stdout and str(reproduced) in again.stdout
    old, new = (json.loads((d / "run.json").read_text()) for d in (original, reproduced))
    assert new["metrics"]["test/loss"] == old["metrics"]["test/loss"] and new["reproduces"] == str(original)
    assert yaml.safe_load((reproduced / ".hydra" / "config.yaml").read_text())["model"]["dropout"] == 0.2
    assert (reproduced / "checkpoints" / "last.ckpt").is_file()

    # A record that says another result, or another torch: the rerun no longer matches / tolerance applies.
    old["metrics"]["test/loss"] += 1e-6
    old["provenance"]["versions"]["torch"] = "0.0.1+cu130"
    old["provenance"]["build"]["cuda"] = "9.2"
    (original / "run.json").write_text(json.dumps(old))
    tolerated = run_cli([str(original)], module="mnist_exp.reproduce", as_script=True)
    assert tolerated.returncode == 0, tolerated.stderr[-3000:]
    assert f"versions.torch: 0.0.1+cu130 -> {torch.__version__}" in tolerated.stdout
    assert f"build.cuda: 9.2 -> {torch.version.cuda}" in tolerated.stdout
    assert "torch's build differs from the original run's" in tolerated.stderr
    assert "(within tolerance=0.003)" in tolerated.stdout
    old["metrics"]["test/acc"] -= 0.01
    (original / "run.json").write_text(json.dumps(old))
    differs = run_cli([str(original), "tolerance=0.001"], module="mnist_exp.reproduce", as_script=True)
    assert differs.returncode == 1
    assert (
        differs.stderr.strip()
        .splitlines()[-1]
        .startswith(f"Error: does not match {original} within tolerance=0.001: test/acc: ")
    )
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "original",
        "original-reproduced",
        "original-reproduced-2",
        "original-reproduced-3",
    ]


def test_only_a_finished_run_can_be_reproduced(tmp_path):
    result = run_cli([str(tmp_path)], module="mnist_exp.reproduce", as_script=True)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: run_dir={tmp_path}: not a run dir with a run record (run.json) and .hydra/config.yaml"
    )
    assert not (tmp_path.parent / f"{tmp_path.name}-reproduced").exists()
