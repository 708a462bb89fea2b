"""OmegaConf resolvers the configs use; imported before Hydra composes anything."""

import os

from omegaconf import OmegaConf

from mnist_exp import PROJECT_ROOT


def register_resolvers() -> None:
    # ${project_root:} -> the repo root, so data/ and outputs/ do not depend on the working directory.
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)
    # ${suffix:TEXT} -> "_TEXT", or "" when TEXT is empty (run dir names built from overrides),
    # cut to 150 characters to stay well inside file-name limits.
    OmegaConf.register_new_resolver("suffix", lambda text="": f"_{text}"[:150] if text else "", replace=True)
    # ${pid:} -> this process's id: unique among processes running at once on one machine.
    OmegaConf.register_new_resolver("pid", lambda: str(os.getpid()), use_cache=True, replace=True)


register_resolvers()
