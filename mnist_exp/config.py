"""OmegaConf resolvers the configs use; imported before Hydra composes anything."""

from omegaconf import OmegaConf

from mnist_exp import PROJECT_ROOT
from mnist_exp.rundirs import first_free


def register_resolvers() -> None:
    # ${project_root:} -> the repo root, so data/ and outputs/ do not depend on the working directory.
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)
    # ${suffix:TEXT} -> "_TEXT", or "" when TEXT is empty (run dir names built from overrides),
    # cut to 150 characters to stay well inside file-name limits.
    OmegaConf.register_new_resolver("suffix", lambda text="": f"_{text}"[:150] if text else "", replace=True)
    # ${unique_dir:PATH} -> PATH or PATH-2, ...: the first that does not exist (cached: the same name for
    # the whole run, and for every job of a sweep). Nothing is created: rundirs.ClaimRunDir does that.
    OmegaConf.register_new_resolver("unique_dir", first_free, use_cache=True, replace=True)


register_resolvers()
