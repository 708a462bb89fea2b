"""OmegaConf resolvers the configs use; imported before Hydra composes anything."""

from omegaconf import OmegaConf

from mnist_exp import PROJECT_ROOT


def register_resolvers() -> None:
    # ${project_root:} -> the repo root, so data/ and outputs/ do not depend on the working directory.
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)
    # ${suffix:TEXT} -> "_TEXT", or "" when TEXT is empty (run dir names built from overrides).
    OmegaConf.register_new_resolver("suffix", lambda text="": f"_{text}" if text else "", replace=True)


register_resolvers()
