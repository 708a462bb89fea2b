"""One builder: a run's objects from its config, for training, evaluate and the pre-run check alike.

`build_run(cfg)` instantiates the network, the optimizer and learning-rate schedule, the input
transform, the data module, the LightningModule, the callbacks, the loggers and the Trainer, in
that order: torch-only pieces first, so that a bad model or optimizer value is refused before
Lightning is imported. Each class checks its own arguments; a constructor that refuses one gets
the key named (`name_the_key`). Nothing is read and no dir is made: the pre-run check builds all of it,
the schedule with the number of steps the config plans (`planned_steps`).

`run_to_fit(cfg)` is the run as fit starts it: the checkpoint it resumes, the seed set before the network
draws its weights, every object built. The run is built once: the pre-run check of a single run builds it
for the dir the run is about to get and hands it over (`hand_over`), and `train()` takes it (`take_over`);
a sweep job, whose dir exists when its own values are known, is checked by building it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mnist_exp.compat.seed import seed_everything
from mnist_exp.errors import ConfigError, first_line, is_int
from mnist_exp.hardware import resolve_precision
from mnist_exp.records.checkpoints import Checkpoint, resolve

CONFIG_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


def leaf_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys of the values in a plain config tree (its `_target_`-like keys left out)."""
    if not isinstance(node, dict):
        return []
    keys = []
    for key, value in node.items():
        if key in CONFIG_KEYS:
            continue
        keys += leaf_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys


def without(tree: dict, dotted: str) -> dict:
    """A copy of the tree without one dotted key."""
    copy = OmegaConf.create(tree)
    parent, _, leaf = dotted.rpartition(".")
    node = OmegaConf.select(copy, parent) if parent else copy
    del node[leaf]
    return OmegaConf.to_container(copy)


def parameter_default(target: str, name: str) -> Any:
    """The default of parameter `name` of the callable `target` names, or None."""
    import inspect

    from hydra.utils import get_object

    try:
        parameter = inspect.signature(get_object(target)).parameters.get(name)
    except Exception:  # noqa: BLE001  (not a callable we can look into)
        return None
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def name_the_key(group: str, tree: dict, make: Callable[[dict], Any], error: Exception, given: set[str]) -> None:
    """`make(tree)` raised `error`: raise a ConfigError that names the key whose value the class refused: the
    one key whose removal (leaving the class's own default) makes the build succeed, else the one key of the
    group that the command line set (`given`), else the group."""
    from hydra.errors import InstantiationException

    cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
    if isinstance(cause, ConfigError):
        raise cause from None
    reason = first_line(cause)
    target = tree.get("_target_") or (tree.get("scheduler") or {}).get("_target_") or group
    keys = leaf_keys(tree)
    culprits = [key for key in keys if f"{group}.{key}" in given]
    for key in keys:
        try:
            make(without(tree, key))
        except Exception:  # noqa: BLE001  (not this key)
            continue
        culprits = [key]
        break
    if len(culprits) == 1:
        value = OmegaConf.select(OmegaConf.create(tree), culprits[0])
        default = parameter_default(target, culprits[0])
        if isinstance(value, str) and isinstance(default, (int, float)) and not isinstance(default, bool):
            reason = f"a number is expected (its default is {default}), not the text {value!r}"
        raise ConfigError(f"{group}.{culprits[0]}={value!r} is refused by {target}: {reason}") from None
    raise ConfigError(f"{group}: {target} cannot be built from this config: {reason}") from None


def built(group: str, cfg: DictConfig, make: Callable[[dict], Any], given: set[str] = frozenset()) -> Any:
    """make(the group's config as a plain tree), its refusal naming the key (`given`: the keys the command
    line set)."""
    node = OmegaConf.select(cfg, group)
    tree = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    try:
        return make(tree)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001  (said again, with the key)
        name_the_key(group, tree, make, error, given)
        raise


def planned_steps(cfg: DictConfig) -> int:
    """Optimizer steps the config plans, from sizes alone (no data read): for the check's schedule."""
    data, trainer = cfg.data, cfg.trainer
    sizes = (
        data.get("train_size") or 60000,
        data.get("val_size") or 0,
        data.get("batch_size"),
        trainer.get("max_epochs"),
    )
    if not all(is_int(size) and size >= 0 for size in sizes) or sizes[2] == 0:
        return 10**6  # sizes the data module or the trainer refuses in their own words, just after
    batches = math.ceil(max(sizes[0] - sizes[1], 1) / sizes[2])
    limit = trainer.get("limit_train_batches") or 1.0
    batches = min(batches, int(limit)) if isinstance(limit, int) and limit > 1 else max(1, int(batches * float(limit)))
    return max(1, trainer.max_epochs * math.ceil(batches / (trainer.get("accumulate_grad_batches") or 1)))


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's info lines ("GPU available", ...) at WARNING for a while. Lightning sets its loggers' level
    when it is imported: imported first, so that the levels set here hold."""
    import pytorch_lightning  # noqa: F401

    quiet = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


@dataclass
class Run:
    """What a run is made of."""

    net: Any
    datamodule: Any
    module: Any
    callbacks: list
    loggers: list
    trainer: Any
    precision: Any
    precision_reason: str


def optimizer_factory(tree: dict, net) -> Callable:
    """The optimizer config as a factory of the parameters, tried once on the network's."""
    factory = instantiate(tree)
    factory(net.parameters())
    return factory


def scheduler_config(tree: dict, factory: Callable, net, steps: int) -> dict:
    """The schedule's config (Lightning's lr_scheduler dict), tried once on an optimizer for `steps` steps."""
    from mnist_exp.models.schedules import make_scheduler  # (imports torch: `--help` and `--cfg` do not)

    config = instantiate(tree)
    optimizer = factory(net.parameters())
    scheduler = make_scheduler(config, optimizer, steps)["scheduler"]
    optimizer.step()  # no gradients: nothing moves
    for _ in range(2):  # some schedules (StepLR) check their arguments only when stepped
        scheduler.step()
    return config


def trainer_from(tree: dict, callbacks: list, loggers: list):

    precision, _ = resolve_precision(tree.get("precision", "auto"), tree.get("accelerator", "auto"))
    return instantiate({**tree, "precision": precision}, callbacks=callbacks, logger=loggers or False)


def build_run(
    cfg: DictConfig,
    resumed_at_step: int | None = None,
    given: set[str] = frozenset(),
    sweep_base: bool = False,
    quiet: bool = False,
) -> Run:
    """Build every object of a training run from its config, nothing read and no dir made (see the
    module's docstring). resumed_at_step: the step of the checkpoint a resumed run continues from (its
    TensorBoard logger hides the events logged after it); given: the keys the command line set (to name
    the one a class refuses); sweep_base: the config is a sweep's base, whose sizes the jobs vary: the
    schedule is tried for a long run (each job tries its own length when it starts); quiet: Lightning's
    info lines left out (the pre-run check's)."""

    net = built("model", cfg, instantiate, given)
    optimizer = built("optimizer", cfg, lambda tree: optimizer_factory(tree, net), given)
    scheduler = None
    if cfg.get("scheduler"):
        steps = 10**6 if sweep_base else planned_steps(cfg)
        scheduler = built("scheduler", cfg, lambda tree: scheduler_config(tree, optimizer, net, steps), given)
    with quiet_lightning() if quiet else contextlib.nullcontext():
        return build_lightning_part(cfg, net, optimizer, scheduler, resumed_at_step, given)


def logger_from(logger_cfg: DictConfig, resumed_at_step: int | None):
    """A logger; a resumed run's TensorBoard logger with SummaryWriter's purge_step, so that the events the
    interrupted run logged after its checkpoint are hidden and every step shows once."""
    from hydra.utils import get_class
    from pytorch_lightning.loggers import TensorBoardLogger

    if resumed_at_step is not None and issubclass(get_class(logger_cfg._target_), TensorBoardLogger):
        return instantiate(logger_cfg, purge_step=resumed_at_step)
    return instantiate(logger_cfg)


def build_lightning_part(cfg, net, optimizer, scheduler, resumed_at_step, given) -> Run:
    """Everything after the torch-only pieces: transform, data module, LightningModule, callbacks, loggers, Trainer."""

    transforms = built("transforms", cfg, instantiate, given)
    datamodule = built("data", cfg, instantiate, given)
    module = built(
        "module",
        cfg,
        lambda tree: instantiate(tree)(
            net=net,
            optimizer=optimizer,
            scheduler=scheduler,
            transforms=transforms,
            net_config=OmegaConf.to_container(cfg.model, resolve=True),
            input_shape=[cfg.data.channels, cfg.data.image_size, cfg.data.image_size],
        ),
        given,
    )
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = [logger_from(c, resumed_at_step) for c in (cfg.get("logger") or {}).values() if c]
    trainer = built("trainer", cfg, lambda tree: trainer_from(tree, callbacks, loggers), given)
    precision, why = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    return Run(net, datamodule, module, callbacks, loggers, trainer, precision, why)


def run_to_fit(
    cfg: DictConfig, given: set[str] = frozenset(), sweep_base: bool = False, quiet: bool = False
) -> tuple[Run, Checkpoint | None]:
    """The run as fit starts it: the checkpoint to resume (`ckpt_path`, pinned before any dir was made and
    read once per process), the seed set before the network draws its weights, then every object built."""
    checkpoint = resolve(cfg.ckpt_path, cfg.paths.log_dir) if cfg.get("ckpt_path") else None
    seed_everything(cfg.seed, workers=True)  # (the recipe says the seed in train.log)
    run = build_run(cfg, checkpoint.step if checkpoint else None, given, sweep_base, quiet)
    return run, checkpoint


# The run the pre-run check built, by the config it was built from: train() fits it instead of building
# another (a dict: a test session runs many commands in one process; each run is taken once).
_handed_over: dict[str, tuple[Run, Checkpoint | None]] = {}


def fingerprint(cfg: DictConfig) -> str:
    """The run's config (Hydra's own node left out), every value resolved, as one string."""
    keys = [key for key in cfg.keys() if key != "hydra"]
    return json.dumps(
        OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True), sort_keys=True, default=str
    )


def hand_over(cfg: DictConfig, built: tuple[Run, Checkpoint | None]) -> None:
    """Keep the run the pre-run check built from `cfg` (its paths.output_dir the dir the run is about to get)."""
    _handed_over.clear()  # an earlier command's, never taken (it failed before training)
    _handed_over[fingerprint(cfg)] = built


def take_over(cfg: DictConfig) -> tuple[Run, Checkpoint | None] | None:
    """The run the pre-run check built from this very config, or None (a sweep job, a run whose dir name was
    taken meanwhile, a DDP helper process, a command that was given no check)."""
    if not _handed_over:
        return None
    return _handed_over.pop(fingerprint(cfg), None)


def planned_run_dir(config: DictConfig) -> str:
    """The dir a single run is about to get: `hydra.run.dir` resolved as Hydra will (the resolvers that name it
    cache their answer), made absolute as Hydra makes it."""
    HydraConfig.instance().set_config(config)  # for ${hydra:...} in the name, as Hydra does before it resolves it
    return os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir")))
