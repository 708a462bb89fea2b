"""A real headless browser for tests: Debian's Chromium (scripts/test.sh installs it), driven from its
command line. `--dump-dom` prints the page after its scripts ran (a virtual-time budget lets the page's
requests and rendering finish first); `--screenshot` saves what it shows. Each call gets an empty profile,
and the flags that keep Chromium off the network it cannot reach here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in CI
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-unsafe-swiftshader",  # WebGL in software (TensorBoard's projector) without a GPU
    "--use-angle=swiftshader",
]


def require_chromium() -> str:
    """Chromium's path; without it a local run skips the test and CI (CI=true) fails it."""
    import pytest

    found = os.environ.get("MNIST_EXP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        why = "chromium not found (scripts/test.sh installs Debian's chromium when it can; or set MNIST_EXP_CHROMIUM)"
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)
    return found


def run_chromium(url: str, *options: str, wait_ms: int = 10_000) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                require_chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={wait_ms}",
                *options,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def requested_urls(url: str, wait_ms: int = 10_000, size: str = "1400,900") -> set[str]:
    """Every URL the page fetched while it loaded (Chromium's network log): what a page drew, also inside
    an iframe (TensorBoard's projector) or a shadow DOM (its images), which --dump-dom does not show. A
    tall window (`size`) makes a page load what is below its fold too."""
    import json

    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "netlog.json"
        screenshot = "--screenshot=" + str(Path(folder) / "page.png")
        run_chromium(url, f"--log-net-log={log}", screenshot, f"--window-size={size}", wait_ms=wait_ms)
        text = log.read_text()
    return {json.loads(f'"{found}"') for found in re.findall(r'"url":"((?:[^"\\]|\\.)*)"', text)}


def rendered_page(url: str, wait_ms: int = 10_000) -> str:
    """The page's DOM after its scripts ran."""
    return run_chromium(url, "--dump-dom", wait_ms=wait_ms)


def screenshot(url: str, path: Path, size: str = "1400,900", wait_ms: int = 10_000) -> Path:
    run_chromium(url, f"--screenshot={path}", f"--window-size={size}", "--hide-scrollbars", wait_ms=wait_ms)
    assert path.is_file() and path.stat().st_size > 0
    return path
