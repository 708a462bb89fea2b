"""A real MLflow tracking server for tests: `mlflow server` on 127.0.0.1 and a free port, its store in a
temp dir; stopped when the context ends, also when the test failed."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import http_server


def call(url: str, path: str, body: dict | None = None) -> dict:
    """GET (or POST a JSON body to) the server's REST API."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}{path}", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    def command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--default-artifact-root",
            str(root / "artifacts"),
            "--workers",
            "1",
        ]

    with http_server(command, "/health", root / "mlflow-server.log") as url:  # gunicorn's processes stop too
        yield url
