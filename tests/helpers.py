"""What the tests share, in one place: synthetic IDX datasets, running the commands (in the test process
through their entry point, or in a process of their own) and composing configs, fake run dirs, hostile
files, TensorBoard event reading. Fixtures live in conftest.py and use these."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import traceback
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

import mnist_exp.config  # noqa: F401  (resolvers)
from mnist_exp import CONFIG_DIR, PROJECT_ROOT
from mnist_exp.data.idx import write_idx
from mnist_exp.data.sources import sha256_of


def compose(overrides=(), return_hydra_config: bool = False, run_dir: str = "/tmp/mnist-exp-unused-run-dir"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(
            "train", overrides=[*overrides, f"hydra.run.dir={run_dir}"], return_hydra_config=return_hydra_config
        )
    # ${hydra:...} interpolations need the Hydra config; resolve paths.output_dir to the run dir.
    cfg.paths.output_dir = run_dir
    return cfg


FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def synthetic_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 uint8 images whose label sets where a bright 8x8 block sits (easy to learn), plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.uint8) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, 28, 28), dtype=np.uint8)
    for image, label in zip(images, labels, strict=False):
        row, col = 2 + 8 * (label // 4), 2 + 6 * (label % 4)
        image[row : row + 8, col : col + 8] = 255
    return images, labels


@dataclass
class SyntheticData:
    data_dir: Path  # what paths.data_dir should be
    folder: Path  # data_dir / "synthetic", holding the IDX files
    checksums: dict  # file name -> sha256
    config_dir: Path  # holds data/synthetic.yaml, for hydra.searchpath

    def overrides(self) -> list[str]:
        """Command-line overrides that train on this dataset instead of MNIST."""
        return [f"hydra.searchpath=[file://{self.config_dir}]", "data=synthetic", f"paths.data_dir={self.data_dir}"]


# Of every split's labels, this fraction is replaced by another class (seeded): no model can reach 100%, so
# accuracies and losses stay below saturation and tell checkpoints, optimizers and widths apart.
FLIPPED_LABELS = 0.1


def flip_labels(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """`labels` with `fraction` of them moved to another class (each flipped label is wrong), seeded."""
    rng = np.random.default_rng(seed)
    flipped = labels.copy()
    chosen = rng.choice(len(labels), size=round(fraction * len(labels)), replace=False)
    flipped[chosen] = (labels[chosen] + rng.integers(1, 10, size=len(chosen))) % 10
    return flipped


def write_synthetic(root: Path, train: int = 600, test: int = 200, flipped: float = FLIPPED_LABELS) -> SyntheticData:
    folder = root / "data" / "synthetic"
    folder.mkdir(parents=True)
    train_images, train_labels = synthetic_digits(train, seed=1)
    test_images, test_labels = synthetic_digits(test, seed=2)
    train_labels, test_labels = flip_labels(train_labels, flipped, seed=3), flip_labels(test_labels, flipped, seed=4)
    arrays = {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }
    for role, name in FILES.items():
        write_idx(folder / name, arrays[role])
    checksums = {name: sha256_of(folder / name) for name in FILES.values()}
    config_dir = root / "conf"
    (config_dir / "data").mkdir(parents=True)
    files_yaml = "\n".join(f"  {role}: {{file: {name}, sha256: {checksums[name]}}}" for role, name in FILES.items())
    (config_dir / "data" / "synthetic.yaml").write_text(
        f"defaults:\n  - mnist\n  - _self_\nname: synthetic\ntrain_size: {train}\nval_size: 100\neval_batch_size: 100\n"
        f"files:\n{files_yaml}\nsources: []\n"
    )
    return SyntheticData(root / "data", folder, checksums, config_dir)


def run_process(args: list[str], cwd: Path = PROJECT_ROOT, timeout: float = 300, module: str = "mnist_exp", env=None):
    """Run `python -m MODULE ARGS` in a process of its own; returns the CompletedProcess. For what only a
    real process shows: signals, several processes at once, a terminal, what gets imported."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_cli(
    args: list[str],
    cwd: Path = PROJECT_ROOT,
    module: str = "mnist_exp",
    env=None,
    importable=(),
    as_script: bool = False,
):
    """`python -m MODULE ARGS` (or, as_script, its console script `mnist-exp... ARGS`) run in this process
    through the same entry point (mnist_exp.cli), with stdout, stderr, exit status and an uncaught
    exception's traceback as a process would give them; returns a CompletedProcess. Saves a torch +
    Lightning import (~6 s) per run. `importable`: dirs put on sys.path for the run, as `python -m` does
    with its working dir."""
    from mnist_exp import cli

    name = next(name for name, command in cli.COMMANDS.items() if command.module == module)
    main_file = importlib.util.find_spec(module).origin
    if module == "mnist_exp":
        main_file = str(Path(main_file).with_name("__main__.py"))
    if as_script:
        main_file = str(Path(sys.executable).parent / cli.COMMANDS[name].script)  # installed beside the interpreter
    stdout, stderr = io.StringIO(), io.StringIO()
    with process_state(cwd, env, importable), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        sys.argv = [main_file, *args]
        try:
            getattr(cli, name)()
            code = 0
        except SystemExit as stopped:
            code = stopped.code if isinstance(stopped.code, int) else (0 if stopped.code is None else 1)
            if stopped.code is not None and not isinstance(stopped.code, int):
                print(stopped.code, file=sys.stderr)
        except Exception:  # noqa: BLE001  (a process would print the traceback and exit 1)
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(
        [sys.executable, "-m", module, *args], code, stdout.getvalue(), stderr.getvalue()
    )


def all_loggers() -> list[logging.Logger]:
    named = [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)]
    return [logging.getLogger(), *[logger for logger in named if isinstance(logger, logging.Logger)]]


@contextlib.contextmanager
def process_state(cwd: Path, env: dict | None, importable=()):
    """Whatever a command changes in its process, put back afterwards: argv, environment, working dir,
    sys.path and the modules imported from `importable`, logging (Hydra configures it per run), signal
    handlers, warning filters, torch's threads and determinism, Hydra's global state."""
    import torch
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    saved_argv, saved_env, saved_cwd, saved_path = sys.argv[:], dict(os.environ), os.getcwd(), sys.path[:]
    saved_modules = set(sys.modules)
    saved_logging = {lg: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in all_loggers()}
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_warnings = warnings.filters[:]
    saved_torch = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_float32_matmul_precision(),
    )
    for name in ("pytorch_lightning", "lightning_fabric"):
        # A command imports Lightning after Hydra set up logging, so Lightning logs through Hydra's handlers;
        # imported here earlier, it got a console handler of its own (that of the test session).
        logging.getLogger(name).handlers[:], logging.getLogger(name).propagate = [], True
    os.environ.update({"PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", **(env or {})})
    sys.path[:0] = [str(p) for p in importable]
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # as in a new process: no run's Hydra config yet
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
        sys.argv[:], sys.path[:] = saved_argv, saved_path
        os.environ.clear()
        os.environ.update(saved_env)
        for name in set(sys.modules) - saved_modules:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if any(origin.startswith(str(p)) for p in importable):
                del sys.modules[name]
        for logger in all_loggers():  # a handler the run added (e.g. to its train.log) is closed and dropped
            handlers, level, propagate, disabled = saved_logging.get(
                logger, ([], logger.level, logger.propagate, logger.disabled)
            )
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers[:] = handlers
            logger.level, logger.propagate, logger.disabled = level, propagate, disabled
        for number, handler in saved_signals.items():
            signal.signal(number, handler)
        warnings.filters[:] = saved_warnings
        torch.set_num_threads(saved_torch[0])
        torch.use_deterministic_algorithms(saved_torch[1], warn_only=saved_torch[2])
        torch.set_float32_matmul_precision(saved_torch[3])


TINY_RUN = ["trainer.max_epochs=2", "data.batch_size=32", "trainer.accelerator=cpu", "trainer.log_every_n_steps=5"]


def fake_run(run_dir, overrides, choices, config, metrics=None, failure=None, last_ckpt=False, job="train"):
    """A run dir as a training run (or evaluate) leaves it."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"job": {"name": job}, "runtime": {"choices": choices}}})
    )
    if metrics:
        (run_dir / "metrics.json").write_text(json.dumps({"epochs": 2, "wall_seconds": 5.0, **metrics}))
    if failure:
        (run_dir / "failure.json").write_text(json.dumps({"error": failure, "wall_seconds": 1.0}))
    if last_ckpt:
        (run_dir / "checkpoints").mkdir()
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    return run_dir


def outputs(tmp_path):
    out = tmp_path / "outputs"
    adam, sgd = {"optimizer": "adam", "model": "cnn"}, {"optimizer": "sgd", "model": "cnn"}
    fake_run(
        out / "2026-11-28/10-00-00", [], adam, {"model": {"channels": 16}}, {"val/acc_best": 0.95, "test/acc": 0.96}
    )
    fake_run(
        out / "multirun/2026-11-28/11-00-00/0_model.channels=32",
        ["optimizer=sgd", "model.channels=32"],
        sgd,
        {"model": {"channels": 32}},
        {"val/acc_best": 0.97, "test/acc": 0.95},
    )
    fake_run(
        out / "multirun/2026-11-28/11-00-00/1_model.channels=64",
        ["optimizer=sgd", "model.channels=64"],
        sgd,
        {"model": {"channels": 64}},
        failure="ConfigError: bad",
    )
    fake_run(out / "2026-11-28/12-00-00", ["trainer.max_epochs=9"], adam, {"model": {"channels": 16}}, last_ckpt=True)
    fake_run(out / "evaluate/2026-11-28/13-00-00", ["ckpt_path=x"], {}, {}, job="evaluate")
    return out


def stroke(size=(120, 90)) -> np.ndarray:
    """A light vertical bar with a foot on black, off-centre: a crude '1'."""
    image = np.zeros(size, dtype=np.uint8)
    image[20:100, 60:72] = 255
    image[90:100, 45:72] = 255
    return image


class Payload:
    """A pickle that creates a directory when unpickled by the unsafe unpickler."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def png_claiming_size(path: Path, width: int, height: int) -> None:
    """A tiny 1-bit PNG whose header claims width x height pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\x00" * (1 + (width + 7) // 8) * 16)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", rows)
        + chunk(b"IEND", b"")
    )


def hostile_corpus(folder: Path) -> dict[str, str]:
    """Write the corpus; name -> 'digit' (must be predicted) or 'error' (must be an error line)."""
    folder.mkdir()
    light = stroke()
    expected = {}

    def save(name, image, kind="digit", **kwargs):
        image.save(folder / name, **kwargs)
        expected[name] = kind

    save("plain.png", Image.fromarray(light))
    save("light16.png", Image.fromarray(light.astype(np.uint16) * 257))  # 16-bit light on dark
    save("dark16.png", Image.fromarray((255 - light).astype(np.uint16) * 257))  # 16-bit dark on light
    save("float.tif", Image.fromarray(light.astype(np.float32) / 255.0))
    save("cmyk.jpg", Image.fromarray(np.stack([255 - light] * 3, -1)).convert("CMYK"), quality=95)
    palette = Image.fromarray(255 - light).convert("P")
    palette.info["transparency"] = palette.getpixel((0, 0))  # the paper is transparent
    save("palette_alpha.png", palette)
    frames = [Image.fromarray(255 - light).convert("P"), Image.new("P", (90, 120), 255)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    expected["animated.gif"] = "digit"
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(255 - light)))  # stored sideways ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... and EXIF says: rotate 90 degrees clockwise to view
    save("exif_rotated.jpg", rotated, exif=exif, quality=95)
    png_claiming_size(folder / "bomb.png", 20000, 20000)
    expected["bomb.png"] = "error"
    whole = (folder / "plain.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    expected["truncated.png"] = "error"
    (folder / "zero.png").write_bytes(b"")
    expected["zero.png"] = "error"
    (folder / "d.png").mkdir()
    expected["d.png"] = "error"
    (folder / "notes.txt").write_text("not an image")
    expected["notes.txt"] = "error"
    odd = os.fsdecode(b"caf\xe9-digit.png")  # a name that is not UTF-8
    Image.fromarray(light).save(folder / odd, format="PNG")
    expected[odd] = "digit"
    return expected


HOLD_LOCK = """
import sys
from mnist_exp.records.rundirs import hold_run_lock
with hold_run_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def load_events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    return events.Reload()


def read_csv(path) -> list[dict]:
    """A csv file the commands write (runs.csv, groups.csv, ...), one dict per row."""
    import csv

    with open(path, newline="") as file:
        return list(csv.DictReader(file))
