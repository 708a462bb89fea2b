"""What a study holds, as rows and lines: every trial with its state, the counts by state, and the best
trial (one objective) or the Pareto front (several). Serves the sweeper's optimization_results.yaml and
`mnist-exp-summarize --storage URL --study NAME`."""

from __future__ import annotations

from collections import Counter

import optuna
from optuna.trial import FrozenTrial, TrialState

STUDY_COLUMNS = ["trial", "state", "value", "params", "worker", "run_dir"]
STATES = ("complete", "pruned", "fail", "running")


def values_of(trial: FrozenTrial) -> str | float:
    """The trial's value, its values joined by `/` for several objectives, or "" if it has none."""
    if trial.values is None:
        return ""
    rounded = [round(v, 6) for v in trial.values]
    return rounded[0] if len(rounded) == 1 else " / ".join(str(v) for v in rounded)


def state_of(trial: FrozenTrial) -> str:
    if "duplicate_of" in trial.user_attrs:
        return f"skipped: same as trial {trial.user_attrs['duplicate_of']}"
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        return f"pruned at epoch {max(trial.intermediate_values)}"
    return trial.state.name.lower()


def study_rows(study: optuna.Study) -> list[dict]:
    """Every trial of a study (the whole search, over all its workers): finished ones first, best first."""
    rows = [
        {
            "trial": t.number,
            "state": state_of(t),
            "value": values_of(t),
            "params": ",".join(f"{k}={v}" for k, v in t.params.items()),
            "worker": t.user_attrs.get("mnist_exp:worker", ""),
            "run_dir": t.user_attrs.get("mnist_exp:run_dir", ""),
        }
        for t in study.get_trials(deepcopy=False)
    ]
    sign = 1 if len(study.directions) > 1 or study.direction == optuna.study.StudyDirection.MINIMIZE else -1
    return sorted(
        rows,
        key=lambda r: (r["state"] != "complete", sign * r["value"] if isinstance(r["value"], float) else 0, r["trial"]),
    )


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state: complete, pruned (duplicates not counted), fail, running."""
    tally = Counter(
        t.state.name.lower() for t in study.get_trials(deepcopy=False) if "duplicate_of" not in t.user_attrs
    )
    return {state: tally.get(state, 0) for state in STATES}


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    return sorted(study.best_trials, key=lambda t: t.values)


def best_lines(study: optuna.Study) -> list[str]:
    """The counts, then the best trial or the Pareto front, in lines for a terminal or a log."""
    tally = counts(study)
    lines = [f"Study {study.study_name!r}: " + ", ".join(f"{n} {state}" for state, n in tally.items())]
    if not tally["complete"]:
        return [*lines, "no trial has completed yet"]
    names = study.metric_names or [f"value {i}" for i in range(len(study.directions))]
    if len(study.directions) == 1:
        best = study.best_trial
        return [*lines, f"Best: trial {best.number}, {names[0]} {best.value:.6g}, {best.params}"]
    lines.append(f"Pareto front ({' / '.join(names)}), {len(study.best_trials)} trials:")
    for trial in pareto_front(study):
        values = ", ".join(f"{name} {value:.6g}" for name, value in zip(names, trial.values, strict=True))
        lines.append(f"  trial {trial.number}: {values}, {trial.params}")
    return lines


def results(study: optuna.Study, where: str) -> dict:
    """optimization_results.yaml: the counts and the best trial, or the Pareto front."""
    summary = {"name": "optuna", "study_name": study.study_name, "storage": where, "trials": counts(study)}
    if not summary["trials"]["complete"]:
        return summary
    if len(study.directions) == 1:
        best = study.best_trial
        return {**summary, "best_trial": best.number, "best_params": best.params, "best_value": best.value}
    front = [{"trial": t.number, "params": t.params, "values": t.values} for t in pareto_front(study)]
    return {**summary, "metric_names": study.metric_names, "pareto_front": front}
