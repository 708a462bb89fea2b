"""OmegaConf resolvers the configs use; imported before Hydra composes anything."""

from omegaconf import OmegaConf

from mnist_exp import PROJECT_ROOT
from mnist_exp.rundirs import claim_dir


def register_resolvers() -> None:
    # ${project_root:} -> the repo root, so data/ and outputs/ do not depend on the working directory.
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)
    # ${suffix:TEXT} -> "_TEXT", or "" when TEXT is empty (run dir names built from overrides),
    # cut to 150 characters to stay well inside file-name limits.
    OmegaConf.register_new_resolver("suffix", lambda text="": f"_{text}"[:150] if text else "", replace=True)
    # ${unique_dir:PATH} -> PATH or PATH-2, ..., claimed on first use (cached: the same dir for the whole
    # run, and for every job of a sweep, whose configs carry the cache to the launcher's workers).
    OmegaConf.register_new_resolver("unique_dir", claim_dir, use_cache=True, replace=True)


register_resolvers()
