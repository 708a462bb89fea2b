"""Every entry point against hostile checkpoints and images, as a user would run it."""

import json
import os

import pytest
import torch
from PIL import Image

from mnist_exp.records.checkpoints import read_checkpoint
from tests.helpers import Payload, hostile_corpus, run_cli, stroke

pytestmark = pytest.mark.slow

ENTRY_POINTS = {
    "mnist_exp": [],
    "mnist_exp.evaluate": [],
    "mnist_exp.predict": ["inputs=x.png"],
    "mnist_exp.export": [],
}


def payloads(tmp_path, synthetic_run):
    """A pickle payload and a `_target_` payload (a real checkpoint whose model config names os.makedirs)."""
    _, run_dir = synthetic_run
    marker = tmp_path / "pwned"
    pickled = tmp_path / "pickle.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net_config": {"_target_": "x"}}, "x": Payload(marker)}, pickled)
    checkpoint = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    checkpoint["hyper_parameters"]["net_config"] = {"_target_": "os.makedirs", "name": str(marker)}
    targeted = tmp_path / "target.ckpt"
    torch.save(checkpoint, targeted)
    return marker, {"pickle": pickled, "target": targeted}


@pytest.mark.parametrize("module", list(ENTRY_POINTS))
def test_malicious_checkpoints_never_run_code_in_any_entry_point(module, synthetic_run, tmp_path):
    data, _ = synthetic_run
    marker, files = payloads(tmp_path, synthetic_run)
    Image.fromarray(stroke()).save(tmp_path / "x.png")  # predict's input is fine: the checkpoint is the problem
    for kind, path in files.items():
        args = [f"ckpt_path={path}", *ENTRY_POINTS[module], f"paths.log_dir={tmp_path / 'out'}"]
        if module in ("mnist_exp", "mnist_exp.evaluate"):
            args += data.overrides()
        result = run_cli(args, module=module, cwd=tmp_path)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1, (kind, result.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith("Error: ckpt_path="), (kind, result.stderr[-2000:])
        assert "refused" in lines[0] or "does not match" in lines[0], lines[0]
        assert not marker.exists(), kind
    assert not (tmp_path / "out").exists()  # nothing written


def test_resume_refuses_another_models_checkpoint_and_a_text_file_before_any_work(synthetic_run, tmp_path):
    import shutil

    data, finished_run = synthetic_run
    run_dir = tmp_path / "stopped"  # the run as if stopped before its results: a run that may be resumed
    shutil.copytree(finished_run, run_dir, ignore=shutil.ignore_patterns("metrics.json"))
    (tmp_path / "notes.ckpt").write_text("just text")
    empty_data = tmp_path / "data"
    for ckpt, expected in (
        (run_dir / "checkpoints" / "last.ckpt", "model.channels is 16 in the checkpoint's run but 32 here"),
        (tmp_path / "notes.ckpt", "not a readable checkpoint"),
    ):
        overrides = [*data.overrides()[:2], f"paths.data_dir={empty_data}"]
        result = run_cli([f"ckpt_path={ckpt}", *overrides, "model.channels=32", f"paths.log_dir={tmp_path / 'out'}"])
        assert result.returncode == 1
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
    assert not empty_data.exists() and not (tmp_path / "out").exists()  # nothing fetched, nothing written


def test_predict_on_a_hostile_folder_streams_a_line_per_file_and_exits_1(synthetic_run, tmp_path):
    _, run_dir = synthetic_run
    expected = hostile_corpus(tmp_path / "in")
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in", target_is_directory=True)
    result = run_cli(
        [
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            f"inputs={tmp_path}/in/**/*",
            f"output={tmp_path / 'out.jsonl'}",
            "batch_size=4",
        ],
        module="mnist_exp.predict",
    )
    assert result.returncode == 1, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows == [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    by_name = {os.path.basename(row["file"]): row for row in rows}
    errors = sorted(
        name for name, kind in expected.items() if kind == "error" and name != "d.png"
    )  # ** lists files only
    assert sorted(n for n, r in by_name.items() if "error" in r) == errors
    assert len(rows) == len(expected) - 1  # every file once, the loop not followed
    assert "caf\\xe9-digit.png" in by_name and "digit" in by_name["caf\\xe9-digit.png"]
    predicted = {by_name[n]["digit"] for n, kind in expected.items() if kind == "digit" and n in by_name}
    assert len(predicted) == 1  # the same digit in every encoding
    assert f"{len(errors)} of {len(rows)} files could not be predicted" in result.stderr
    good = run_cli(
        [f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"inputs={tmp_path}/in/plain.png"],
        module="mnist_exp.predict",
    )
    assert good.returncode == 0 and len(good.stdout.splitlines()) == 1
    empty = run_cli(
        [f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"inputs={tmp_path}/nothing/*.png"],
        module="mnist_exp.predict",
    )
    assert empty.returncode == 1
