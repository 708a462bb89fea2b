"""The run's records on disk and in trackers: run dirs, run locks, who is training now and the one atomic
writer (rundirs.py), run.json (record.py), safe checkpoint loading (checkpoints.py), TensorBoard's HParams
(hparams.py), MLflow's tags and LoggedModel (tracking.py) and what reaches the console and train.log
(logs.py). May import models (the model MLflow keeps) and the ground; nothing above."""
