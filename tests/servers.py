"""Real servers for tests (MLflow, TensorBoard, optuna-dashboard): each started in a process group of its
own on 127.0.0.1 and a free port (another port when the chosen one was taken before the server bound it),
and stopped with its whole group, the processes it started included, also when the test failed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A port no one listens on now; a server started on it may still lose it to another process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    """Ask a process to stop (SIGTERM), kill it if it does not within `timeout`. A process started in a
    session of its own (start_new_session=True) is stopped with its whole group: what it started too."""
    try:
        group = os.getpgid(process.pid) if os.getpgid(process.pid) == process.pid else None
    except ProcessLookupError:
        group = None

    def send(signum: int) -> None:
        try:
            os.killpg(group, signum) if group else process.send_signal(signum)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()
    if group:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the group's other processes (a server's workers) end too
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        send(signal.SIGKILL)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def http_server(
    command: Callable[[int], list[str]], ready_path: str, log: Path, timeout: float = 120, attempts: int = 3
) -> Iterator[str]:
    """`command(port)` started in a process group of its own; yields its URL once `ready_path` answers 200."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        with open(log, "w") as output:
            server = subprocess.Popen(command(port), stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
        while server.poll() is None and not answers(url + ready_path) and time.monotonic() < deadline:
            time.sleep(0.3)
        if server.poll() is None and answers(url + ready_path):
            break
        stop_process(server)
        if attempt == attempts or time.monotonic() >= deadline:  # a port taken ends the server at once: retried
            raise RuntimeError(f"{command(port)[:3]} did not start on port {port}: {log.read_text()[-2000:]}")
    try:
        yield url
    finally:
        stop_process(server)
