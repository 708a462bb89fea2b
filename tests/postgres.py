"""A throwaway PostgreSQL server for tests: its own cluster in a temp dir, on 127.0.0.1 and a free port.

Debian's server binaries live in /usr/lib/postgresql/<version>/bin (MNIST_EXP_PG_BIN overrides);
initdb and postgres refuse to run as root, so as root they run as the `postgres` user. The server
is stopped and its dir removed when the context ends, also when the test failed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

USER, PASSWORD, DATABASE = "mnist", "pw-Zq81-never-logged", "optuna"


def server_binaries() -> Path | None:
    candidates = [os.environ.get("MNIST_EXP_PG_BIN", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    on_path = shutil.which("initdb")
    candidates.append(str(Path(on_path).parent) if on_path else "")
    return next((Path(c) for c in candidates if c and (Path(c) / "initdb").is_file()), None)


def require_server_binaries() -> Path:
    """The server binaries; without them a local run skips the test, and CI (CI=true) fails it: .ci/run
    installs PostgreSQL, so a missing server there is a broken setup, not a reason to skip."""
    import pytest

    found = server_binaries()
    if found is None:
        why = (
            "PostgreSQL server binaries not found (scripts/test.sh installs the postgresql package when it can; "
            "or set MNIST_EXP_PG_BIN to a dir holding initdb)"
        )
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)
    return found


@dataclass
class Server:
    port: int
    password: str = PASSWORD

    def url(self, with_password: bool = False) -> str:
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{DATABASE}"


@contextmanager
def postgres_server():
    """Yields a Server whose database `optuna` belongs to user `mnist` (password auth over TCP)."""
    bin_dir = server_binaries()
    if bin_dir is None:
        raise FileNotFoundError(
            "PostgreSQL server binaries (initdb) not found: apt-get install postgresql, or set MNIST_EXP_PG_BIN"
        )
    root = Path(tempfile.mkdtemp(prefix="mnist-exp-pg-"))
    as_server_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_server_user:
        shutil.chown(root, "postgres")
    data = root / "data"

    def run(*command: str) -> None:
        subprocess.run([*as_server_user, *command], check=True, capture_output=True, text=True, timeout=120)

    started = False
    try:
        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        )
        for attempt in (1, 2, 3):  # another port when the free one was taken before the server bound it
            port = free_port()
            options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
            try:
                run(
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(root / "server.log"),
                    "-w",
                    "start",
                )
                break
            except subprocess.CalledProcessError:
                if attempt == 3:
                    raise
        started = True
        sql = f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'; CREATE DATABASE {DATABASE} OWNER {USER};"
        for statement in sql.split("; "):
            run(
                str(bin_dir / "psql"),
                "-h",
                str(root),
                "-p",
                str(port),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                statement,
            )
        yield Server(port)
    finally:
        if started:
            subprocess.run(
                [*as_server_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
