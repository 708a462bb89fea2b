"""Compose the project's Hydra config in-process, as `python -m mnist_exp OVERRIDES` would."""

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import mnist_exp.config  # noqa: F401  (resolvers)
from mnist_exp import CONFIG_DIR


def compose(overrides=(), return_hydra_config: bool = False, run_dir: str = "/tmp/mnist-exp-unused-run-dir"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(
            "train", overrides=[*overrides, f"hydra.run.dir={run_dir}"], return_hydra_config=return_hydra_config
        )
    # ${hydra:...} interpolations need the Hydra config; resolve paths.output_dir to the run dir.
    cfg.paths.output_dir = run_dir
    return cfg


def stopped_run_dir(log_dir, name: str, overrides: list[str]):
    """A run dir as a stopped run leaves it: its overrides and a (dummy) checkpoints/last.ckpt."""
    run_dir = log_dir / "2026-11-27" / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"not read when only composing")
    return run_dir
