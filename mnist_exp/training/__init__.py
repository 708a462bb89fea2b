"""The training run: the one builder that instantiates a run from its config (build.py: network,
optimizer, schedule, transform, data module, LightningModule, callbacks, loggers, Trainer), the recipe
that fits, tests and publishes it (recipe.py: `train()`, `run_training()`), the project's Lightning
callbacks, each reporting its own `results()` (callbacks.py), and temperature scaling (calibration.py).
May import the records, models and data, and the ground; not analysis (the test report is named by its
config) and never a command or the lifecycle."""
