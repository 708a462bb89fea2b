"""Files from elsewhere: hostile images, broken data sources, unsafe checkpoints, runs still going."""

import errno
import gzip
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_exp.data import sources
from mnist_exp.data.images import ImageError, load_digit
from mnist_exp.data.sources import DatasetUnavailableError, LocalDirectory, ensure_files
from mnist_exp.errors import ConfigError
from mnist_exp.predict.command import expand_inputs
from mnist_exp.records.checkpoints import CheckpointError, check_targets, read_checkpoint
from mnist_exp.records.rundirs import find_checkpoint, hold_run_lock, write_json_atomically
from tests.helpers import HOLD_LOCK, Payload, hostile_corpus, stroke


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"refused: it holds os.makedirs, not only tensors"):
        read_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"hello, I am text\n", "not a readable checkpoint"),
        (b'{"epoch": 3, "loss": 0.5}\n', "not a readable checkpoint"),  # text whose first byte is a pickle opcode
        (b"x = 1\n", "not a readable checkpoint"),
        (b"", "not a readable checkpoint"),
        (None, "not an mnist-exp checkpoint (no weights inside)"),
    ],
)
def test_files_that_are_not_checkpoints_get_one_line(tmp_path, content, message):
    path = tmp_path / "x.ckpt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=re.escape(message)) as error:
        read_checkpoint(path)
    assert "\n" not in str(error.value)
    with pytest.raises(CheckpointError, match="is a directory"):
        read_checkpoint(tmp_path)


def test_a_model_config_may_only_name_allowed_models(tmp_path):
    check_targets({"_target_": "mnist_exp.models.CNN", "channels": 8}, "x.ckpt")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text("_target_: my.Model\n")  # a user's model option on the search path
    sources = [{"provider": "main", "schema": "file", "path": str(tmp_path)}]
    check_targets({"_target_": "my.Model"}, "x.ckpt", config_sources=sources)
    with pytest.raises(CheckpointError, match="names my.Model"):
        check_targets({"_target_": "my.Model"}, "x.ckpt")
    for evil in (
        {"_target_": "os.makedirs", "name": "x"},
        {"_target_": "mnist_exp.models.CNN", "act": {"_target_": "os.system"}},
    ):
        with pytest.raises(CheckpointError, match=r"refused: its model config names os\.(makedirs|system)"):
            check_targets(evil, "x.ckpt")


# --- images -----------------------------------------------------------------------------------


def test_every_hostile_image_gets_a_digit_or_one_error_and_good_digits_look_alike(tmp_path):
    expected = hostile_corpus(tmp_path / "in")
    reference = load_digit(tmp_path / "in" / "plain.png").astype(int)
    for name, kind in expected.items():
        path = tmp_path / "in" / name
        if kind == "error":
            with pytest.raises(ImageError) as error:
                load_digit(path)
            assert "\n" not in str(error.value)
        else:
            digit = load_digit(path).astype(int)
            assert np.abs(digit - reference).mean() < 10, name  # the same digit, whatever the encoding
    with pytest.raises(ImageError, match="image too large"):
        load_digit(tmp_path / "in" / "bomb.png")
    with pytest.raises(ImageError, match="is a directory"):
        load_digit(tmp_path / "in" / "d.png")


def test_inputs_list_each_file_once_and_do_not_follow_symlink_loops(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        Image.fromarray(stroke()).save(folder / name)
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "a_again.png").symlink_to(folder / "a.png")
    found = expand_inputs([f"{folder}/**/*.png", str(folder / "a.png")])
    assert sorted(p.name for p in found) == ["a.png", "b.png"]
    assert expand_inputs(str(tmp_path / "nothing-*.png")) == [tmp_path / "nothing-*.png"]  # reported as missing


# --- data sources -------------------------------------------------------------------------------


class Failing:
    def __init__(self, how: str):
        self.how = how

    def __str__(self):
        return f"failing source ({self.how})"

    def fetch(self, names, workdir):
        if self.how == "truncated gzip":
            full = gzip.compress(b"x" * 10000)
            (workdir / f"{names[0]}.gz").write_bytes(full[: len(full) // 2])
            return sources._collect(names, workdir, workdir)
        if self.how == "corrupt tarball":
            import tarfile

            (workdir / "p.tgz").write_bytes(b"\x1f\x8b not really")
            tarfile.open(workdir / "p.tgz")
        raise OSError(errno.ENOSPC, "No space left on device")


def test_every_source_failure_falls_through_to_the_next_source(synthetic, tmp_path):
    failing = [Failing("truncated gzip"), Failing("corrupt tarball"), Failing("disk full")]
    data_dir = tmp_path / "fresh"
    folder = ensure_files("synthetic", synthetic.checksums, [*failing, LocalDirectory(str(synthetic.folder))], data_dir)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(synthetic.checksums)
    assert not list(folder.glob(".fetch-*"))  # no half-fetched temp dirs left
    with pytest.raises(DatasetUnavailableError) as error:
        ensure_files("synthetic", synthetic.checksums, failing, tmp_path / "none")
    text = str(error.value)
    for part in ("truncated gzip", "EOFError", "corrupt tarball", "ReadError", "disk full", "No space left on device"):
        assert part in text, part
    assert not list((tmp_path / "none" / "synthetic").glob(".fetch-*"))


def test_verified_files_are_read_without_the_lock_and_stale_fetch_dirs_are_cleaned(synthetic, monkeypatch):
    class NoLock:
        def __init__(self, *args, **kwargs):
            raise PermissionError(errno.EACCES, "read-only data dir")

    monkeypatch.setattr(sources, "FileLock", NoLock)
    assert ensure_files("synthetic", synthetic.checksums, [], synthetic.data_dir) == synthetic.folder
    monkeypatch.undo()
    stale = synthetic.folder / ".fetch-abc"
    stale.mkdir()
    (synthetic.folder / next(iter(synthetic.checksums))).unlink()  # one file missing: a fetch under the lock
    with pytest.raises(DatasetUnavailableError):
        ensure_files("synthetic", synthetic.checksums, [], synthetic.data_dir)
    assert not stale.exists()


# --- run dirs -------------------------------------------------------------------------------------


def test_last_never_picks_a_run_that_is_still_running(tmp_path):
    older, newer = (tmp_path / "runs" / name / "checkpoints" for name in ("older", "newer"))
    for folder in (older, newer):
        folder.mkdir(parents=True)
        (folder / "last.ckpt").write_bytes(b"x")
    os.utime(older / "last.ckpt", (1, 1))
    assert find_checkpoint("last", tmp_path) == (newer / "last.ckpt").resolve()
    running = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(newer.parent)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert running.stdout.readline() == "held\n"
        assert find_checkpoint("last", tmp_path) == (older / "last.ckpt").resolve()
        with pytest.raises(CheckpointError, match="belongs to a run that is still running"):
            find_checkpoint(str(newer / "last.ckpt"), tmp_path)
        with pytest.raises(ConfigError, match="in use by another running process"):
            with hold_run_lock(newer.parent):
                pass
    finally:
        running.kill()
        running.wait()
    assert find_checkpoint("last", tmp_path) == (newer / "last.ckpt").resolve()  # the OS freed the lock
    with hold_run_lock(newer.parent):  # this process's own run is not "another running run"
        assert find_checkpoint(str(newer / "last.ckpt"), tmp_path) == (newer / "last.ckpt").resolve()


def test_atomic_json_writes_leave_no_temp_files(tmp_path):
    for value in range(3):
        write_json_atomically(tmp_path / "metrics.json", {"value": value})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"value": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_an_atomic_write_gets_the_mode_of_the_files_beside_it(tmp_path):
    """metrics.json, evaluation.json, exports: a private temp file renamed into place, then given the mode any
    new file of the run dir has (a colleague who can read the run dir can read these too)."""
    from mnist_exp.records.rundirs import write_atomically

    (tmp_path / "beside.txt").write_text("x")
    write_json_atomically(tmp_path / "metrics.json", {"a": 1})
    write_atomically(tmp_path / "model.onnx", lambda tmp: tmp.write_bytes(b"onnx"))
    mode = (tmp_path / "beside.txt").stat().st_mode & 0o777
    assert {(tmp_path / n).stat().st_mode & 0o777 for n in ("metrics.json", "model.onnx")} == {mode}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beside.txt", "metrics.json", "model.onnx"]  # no temp left
