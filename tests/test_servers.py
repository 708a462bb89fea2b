"""The test servers' own plumbing (tests/servers.py): a server is stopped with what it started."""

import os
import subprocess
import sys
import time

from tests.conftest import SESSION_MARK, processes_marked
from tests.servers import stop_process


def test_stopping_a_server_stops_the_processes_it_started():
    # A "server" that starts a worker and leaves it behind when it is terminated, as `mlflow server` does gunicorn.
    program = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"
    )
    server = subprocess.Popen([sys.executable, "-c", program], start_new_session=True)
    mark = f"{SESSION_MARK}={os.environ[SESSION_MARK]}"
    deadline = time.monotonic() + 30
    while len([p for p in processes_marked(mark) if "time.sleep(600)" in p]) < 2:
        assert time.monotonic() < deadline, "the server did not start its worker"
        time.sleep(0.05)
    stop_process(server, timeout=5)
    assert not [p for p in processes_marked(mark) if "time.sleep(600)" in p]
