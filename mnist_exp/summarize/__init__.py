"""Tables of runs: a sweep's jobs, or every run under a dir, with their status and metrics.

  python -m mnist_exp.summarize SWEEP_DIR                        # a sweep: summary.csv/.md/.png in it
  python -m mnist_exp.summarize outputs/                         # every run and sweep job under outputs/
  python -m mnist_exp.summarize outputs/ --sort test_acc --where optimizer=sgd --where model.channels=32

Reads each run's record (run.json; metrics.json or failure.json for runs made before records) and
its .hydra/ files, so it works whatever the sweeper or launcher, also after a crash or while runs go
on. A run's status is `ok`, `failed: <first line of the error>`, `running` (its process still holds
the run's lock) or `stopped` (`stopped, resumable` when it left a checkpoints/last.ckpt). A sweep
dir (one with Hydra's multirun.yaml) gets summary.csv, summary.md and summary.png (the metric against
each swept parameter, seeds as error bars); any other dir gets runs.csv and runs.md; both get
groups.csv/.md (runs that differ only in seed: mnist_exp/summarize/groups.py). `--sort COLUMN`
orders by a column (numbers high to low, text A to Z); `--by-budget` by training budget first;
`--where KEY=VALUE` keeps runs whose config group option (`optimizer=sgd`) or config value
(`model.channels=32`) matches, values compared as values (mnist_exp/summarize/where.py);
`--compare A B` compares two groups of seeds. Every multirun ends with its sweep's summary through
`SweepSummary`, a Hydra callback (mnist_exp/conf/hydra/default.yaml), and then exits non-zero if any job
failed.

  python -m mnist_exp.summarize --storage postgresql://USER@HOST/DB --study mnist-exp [DIR]

A whole Optuna study from its storage (a database URL or a journal file such as a sweep's
optuna.journal), all workers' trials (mnist_exp/study/report.py): trial, state (complete, pruned at
epoch N, fail, running), value, parameters, worker (host:pid) and run dir, then the counts by state and
the best trial (the Pareto front for several objectives); study.csv/.md are written to DIR if given.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import time
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback

from mnist_exp.analysis.plots import pyplot
from mnist_exp.config import parse_overrides
from mnist_exp.errors import ConfigError, Escalated, FailedItemsError
from mnist_exp.records.record import read_record
from mnist_exp.records.rundirs import is_running, sweep_record, write_atomically, write_text_atomically
from mnist_exp.summarize.groups import GROUP_COLUMNS, compare, comparison_lines, group_of, group_rows, seed_of
from mnist_exp.summarize.where import budget_of, conditions, config_of, matches, parsed

COLUMNS = ["job", "overrides", "status", "val_acc_best", "test_acc", "epochs", "wall_seconds", "run_dir"]
# printed at a sweep's end: each job by number and the overrides that tell it apart (the title names the rest)
PRINTED_COLUMNS = ["job", "differs", "status", "val_acc_best", "test_acc", "wall_seconds"]  # epochs: in the files
RUN_COLUMNS = ["started", "run", "overrides", "status", "budget", "val_acc_best", "test_acc", "epochs", "wall_seconds"]
# What the terminal shows (80 columns): the run dir names the run and its overrides; the files have the rest.
# printed: each run by its dir's date, time and job number (whole), and the overrides that tell it apart
PRINTED_RUN_COLUMNS = ["run", "differs", "status", "budget", "val_acc_best", "test_acc", "wall_seconds"]
METRIC = "val_acc_best"
FILE_ONLY = ["fit_seconds", "seed", "group"]  # in the csv and md files, not in the printed table


def job_number(job_dir: Path) -> int:
    head = job_dir.name.split("_", 1)[0]
    return int(head) if head.isdigit() else -1


def status_of(run_dir: Path) -> tuple[str, dict]:
    """(status, metrics): ok, failed: ..., running, stopped or stopped, resumable. From the run's record
    (run.json); for runs made before records, from metrics.json and failure.json."""

    record = read_record(run_dir)
    if record is not None:
        if record["status"] == "ok" and record.get("metrics"):
            return "ok", metric_columns(record["metrics"])
        if record["status"] == "pruned" and record.get("metrics"):
            return f"pruned at epoch {record['metrics']['pruned_at_epoch']}", metric_columns(record["metrics"])
        if record["status"] == "failed":
            return f"failed: {record.get('error')}", {}
    else:
        metrics_file, failure_file = run_dir / "metrics.json", run_dir / "failure.json"
        failed = failure_file.exists() and (
            not metrics_file.exists() or failure_file.stat().st_mtime >= metrics_file.stat().st_mtime
        )
        if failed:
            failure = json.loads(failure_file.read_text())
            return f"failed: {failure['error']}", {"wall_seconds": failure.get("wall_seconds", "")}
        if metrics_file.exists():
            return "ok", metric_columns(json.loads(metrics_file.read_text()))
    if is_running(run_dir):
        return "running", {}
    return ("stopped, resumable" if (run_dir / "checkpoints" / "last.ckpt").is_file() else "stopped"), {}


def metric_columns(metrics: dict) -> dict:
    return {
        "val_acc_best": round(metrics["val/acc_best"], 6),
        "test_acc": round(metrics["test/acc"], 6) if "test/acc" in metrics else "",
        "epochs": metrics["epochs"],
        "fit_seconds": metrics.get("fit_seconds", ""),
        "wall_seconds": metrics.get("wall_seconds", ""),
    }


def run_row(run_dir: Path, columns: list[str]) -> dict:
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    row = {column: "" for column in columns}
    status, metrics = status_of(run_dir)
    row.update(overrides=",".join(overrides), status=status, **metrics)
    row["_overrides"] = overrides  # the list itself: a value may hold a comma ([8,16])
    row.update(seed=seed_of(overrides, default=saved_seed(run_dir)), group=group_of(overrides))
    return row


def saved_seed(run_dir: Path):
    """The seed the run's saved config holds (a run given no seed= ran with the config's default)."""
    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()) if (run_dir / ".hydra").is_dir() else {}
    return (config or {}).get("seed", "default")


def sort_rows(rows: list[dict], key: str = METRIC) -> list[dict]:
    """Finished runs first; numbers high to low, text A to Z."""
    order = {"ok": 0, "running": 1}
    numeric = any(isinstance(r.get(key), (int, float)) for r in rows)
    if numeric:
        return sorted(
            rows, key=lambda r: (order.get(r["status"], 2), -(r.get(key) or 0.0), str(r.get("run", r.get("job"))))
        )
    return sorted(rows, key=lambda r: (str(r.get(key, "")), order.get(r["status"], 2)))


def collect(sweep_dir: str | Path) -> list[dict]:
    """One row per job of a sweep dir, best validation accuracy first."""
    sweep_dir = Path(sweep_dir)
    rows = []
    for overrides_file in sweep_dir.glob("*/.hydra/overrides.yaml"):
        job_dir = overrides_file.parent.parent
        rows.append({**run_row(job_dir, COLUMNS), "job": job_number(job_dir), "run_dir": job_dir.name})
    return sort_rows(rows)


def hydra_settings(run_dir: Path) -> dict:
    """The `hydra` node of the run's .hydra/hydra.yaml (job name, chosen group options); {} without one."""
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    return (yaml.safe_load(hydra_file.read_text()) or {}).get("hydra", {}) if hydra_file.is_file() else {}


def collect_runs(
    root: str | Path, where: list[str] | None = None, sort: str = METRIC, by_budget: bool = False
) -> list[dict]:
    """One row per training run and sweep job anywhere under root (those that match `where`)."""
    root = Path(root)
    runs = []
    for overrides_file in sorted(root.glob("**/.hydra/overrides.yaml")):
        run_dir = overrides_file.parent.parent
        hydra = hydra_settings(run_dir)
        if hydra.get("job", {}).get("name", "train") != "train":  # evaluate leaves .hydra/ dirs too
            continue
        runs.append((run_dir, config_of(run_dir), hydra.get("runtime", {}).get("choices", {})))
    wanted = conditions(where or [], [(config, choices) for _, config, choices in runs])
    rows = []
    for run_dir, config, choices in runs:
        if not matches(config, choices, wanted):
            continue
        config_file = run_dir / ".hydra" / "config.yaml"
        started = (config_file if config_file.exists() else run_dir / ".hydra" / "overrides.yaml").stat().st_mtime
        row = run_row(run_dir, RUN_COLUMNS)
        row.update(started=time.strftime("%Y-%m-%d %H:%M", time.localtime(started)), run=str(run_dir.relative_to(root)))
        row["budget"] = budget_of(config)
        rows.append(row)
    rows = sort_rows(rows, sort)
    return sorted(rows, key=lambda row: row["budget"]) if by_budget else rows


def telling_apart(rows: list[dict]) -> tuple[list[dict], str]:
    """Rows to print, and the dirs they all lie under: `run` as its dir's place below those (date, time,
    job number: each part of the path up to its overrides, which a long name would cut), and `differs`,
    the overrides that not every row shares."""
    places = [[part.split("_", 1)[0] for part in str(row["run"]).split("/")] for row in rows]
    common = 0
    while places and all(len(p) > common + 1 and p[common] == places[0][common] for p in places):
        common += 1
    shown = [{**row, "run": "/".join(place[common:])} for row, place in zip(with_differs(rows), places, strict=True)]
    return shown, "/".join(places[0][:common]) if places else ""


def shared_overrides(rows: list[dict]) -> list[str]:
    """The overrides every row has (a sweep's fixed settings), in the first row's order."""
    common = set.intersection(*(set(row["_overrides"]) for row in rows)) if rows else set()
    return [o for o in rows[0]["_overrides"] if o in common] if rows else []


def with_differs(rows: list[dict]) -> list[dict]:
    """Each row with `differs`: its overrides that not every row shares (what a printed table has room for;
    the whole override list, cut to the terminal's width, read alike in every row)."""
    shared = set(shared_overrides(rows))
    return [
        {**row, "differs": " ".join(o for o in row["_overrides"] if o not in shared) or "(only what all share)"}
        for row in rows
    ]


def to_markdown(rows: list[dict], columns: list[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")).replace("|", "\\|") for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict], columns: list[str] = COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def swept_parameters(rows: list[dict]) -> dict[str, list[str]]:
    """override key -> its value per row, for the keys whose value differs between jobs."""
    values: dict[str, list[str]] = {}
    parsed = [
        {o.key_or_group: o.get_value_element_as_str() for o in parse_overrides(row["_overrides"])} for row in rows
    ]
    for key in sorted({k for p in parsed for k in p}):
        column = [p.get(key, "") for p in parsed]
        if len(set(column)) > 1:
            values[key] = column
    return values


def plot(rows: list[dict], path: Path) -> None:
    """The metric against each swept key (seed aside): each point a value's mean over the runs that share it,
    with an error bar of their standard deviation (the seeds' spread) where there are several."""
    plt = pyplot()

    done = [r for r in rows if r["status"] == "ok"]
    params = {key: column for key, column in swept_parameters(done).items() if key != "seed"}
    if not done or not params:
        return
    figure, axes = plt.subplots(1, len(params), figsize=(4 * len(params), 3.2), squeeze=False)
    for ax, (key, column) in zip(axes[0], params.items(), strict=True):
        by_value: dict[str, list[float]] = {}
        for value, row in zip(column, done, strict=True):
            by_value.setdefault(value, []).append(row[METRIC])
        values = sorted(by_value)
        means = [statistics.fmean(by_value[v]) for v in values]
        errors = [statistics.stdev(by_value[v]) if len(by_value[v]) > 1 else 0.0 for v in values]
        try:
            x = [float(v) for v in values]
            if min(x) > 0 and max(x) / min(x) >= 20:
                ax.set_xscale("log")
        except ValueError:  # categorical values
            x = list(range(len(values)))
            ax.set_xticks(x, values, rotation=30)
        ax.errorbar(x, means, yerr=errors, fmt="o", capsize=4)
        ax.set_xlabel(key)
        ax.set_ylabel("val/acc_best (mean ± std over seeds)")
    figure.tight_layout()
    write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
    plt.close(figure)


TEXT_COLUMNS = ("overrides", "differs", "status", "started", "state", "params", "worker", "group", "budget")
WHOLE_COLUMNS = ("run",)  # text never cut: a run's place to copy
HEADERS = {
    "val_acc_best": "val best",
    "test_acc": "test",
    "wall_seconds": "wall s",
    "epochs": "ep",
    "test_acc_mean": "test mean",
    "test_acc_std": "std",
    "test_acc_ci95": "95% CI ±",
    "val_acc_best_mean": "val mean",
    "fit_seconds_mean": "fit s",
}


def print_table(rows: list[dict], title: str, columns: list[str] = COLUMNS) -> None:
    """One line per row, fitting the terminal (80 columns when it is not one): numbers whole, long text cut
    with an ellipsis; the csv and md files hold it whole."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    shown = [c for c in columns if c != "run_dir"]  # the run dir repeats the overrides; it is in the files
    cells = [[shown_value(c, row.get(c, "")) for c in shown] for row in rows]
    widths = [max([len(HEADERS.get(c, c)), *(len(line[i]) for line in cells)]) for i, c in enumerate(shown)]
    console = Console()
    text = [i for i, c in enumerate(shown) if c in TEXT_COLUMNS]
    room = (
        console.width - (3 * len(shown) - 3) - sum(w for i, w in enumerate(widths) if i not in text)
    )  # padding, rules
    while text and sum(widths[i] for i in text) > room:  # narrow the widest text column, one character at a time
        widest = max(text, key=lambda i: widths[i])
        if widths[widest] <= 8:
            break
        widths[widest] -= 1
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for i, column in enumerate(shown):
        kind = {"overflow": "ellipsis"} if i in text else {"justify": "right"}  # numbers are never cut
        if column in WHOLE_COLUMNS:
            kind = {"overflow": "fold"}
        table.add_column(HEADERS.get(column, column), no_wrap=True, width=widths[i], **kind)
    for row, line in zip(rows, cells, strict=True):
        failed = row.get("status", row.get("state", "")).startswith(("failed", "fail"))
        table.add_row(*line, style="red" if failed else None)
    console.print(title, soft_wrap=True, highlight=False, markup=False)  # a path in it stays whole, to copy
    console.print(table)


def shown_value(column: str, value) -> str:
    if not isinstance(value, float):
        return str(value)
    return f"{value:.1f}" if "seconds" in column else f"{value:.4f}"


def summarize(sweep_dir: str | Path) -> list[dict]:
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    write_text_atomically(sweep_dir / "summary.csv", to_csv(rows, COLUMNS + FILE_ONLY))
    write_text_atomically(sweep_dir / "summary.md", to_markdown(rows, COLUMNS + FILE_ONLY))
    plot(rows, sweep_dir / "summary.png")
    fixed = " ".join(shared_overrides(rows)) if len(rows) > 1 else ""
    continued = len(sweep_record(sweep_dir)["starts"]) - 1  # runs of the same command that continued it
    times = f"; continued {continued} time{'s' if continued > 1 else ''}" if continued > 0 else ""
    print_table(
        with_differs(rows),
        f"sweep {sweep_dir} ({len(rows)} jobs{times}{'; all with ' + fixed if fixed else ''})",
        PRINTED_COLUMNS,
    )
    write_groups(rows, sweep_dir)
    return rows


def write_groups(rows: list[dict], out_dir: Path) -> list[dict]:
    """groups.csv and groups.md (runs that differ only in seed); printed when some group has replicates."""
    groups = group_rows(rows)
    write_text_atomically(out_dir / "groups.csv", to_csv(groups, GROUP_COLUMNS))
    write_text_atomically(out_dir / "groups.md", to_markdown(groups, GROUP_COLUMNS))
    if any(group["n"] > 1 for group in groups):
        shown = [
            "group",
            "n",
            "test_acc_mean",
            "test_acc_std",
            "test_acc_ci95",
            "val_acc_best_mean",
            "fit_seconds_mean",
        ]
        print_table(groups, f"groups of runs that differ only in seed ({len(groups)})", shown)
    return groups


def summarize_runs(
    root: str | Path, where: list[str] | None = None, sort: str = METRIC, by_budget: bool = False
) -> list[dict]:
    root = Path(root)
    rows = collect_runs(root, where, sort, by_budget)
    write_text_atomically(root / "runs.csv", to_csv(rows, RUN_COLUMNS + FILE_ONLY))
    write_text_atomically(root / "runs.md", to_markdown(rows, RUN_COLUMNS + FILE_ONLY))
    filters = "".join(f", {w}" for w in where or [])
    order = f"by budget, then {sort}" if by_budget else f"by {sort}"
    shown, under = telling_apart(rows)
    print_table(shown, f"runs under {root / under} ({len(rows)}{filters}; {order})", PRINTED_RUN_COLUMNS)
    write_groups(rows, root)
    return rows


def summarize_study(storage: str, study_name: str, out_dir: Path | None) -> int:
    # (optuna and SQLAlchemy, about a second: summarize is a callback of every sweep, most of them no study)
    from mnist_exp.study.report import STUDY_COLUMNS, best_lines, study_rows
    from mnist_exp.study.storage import load_study, masked

    study = load_study(storage, study_name)
    rows = study_rows(study)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(out_dir / "study.csv", to_csv(rows, STUDY_COLUMNS))
        write_text_atomically(out_dir / "study.md", to_markdown(rows, STUDY_COLUMNS))
    workers = len({r["worker"] for r in rows if r["worker"]})
    counted = f"{len(rows)} trials, {workers} worker{'s' if workers != 1 else ''}"
    print_table(rows, f"study {study_name!r} in {masked(storage)} ({counted})", STUDY_COLUMNS)
    for line in best_lines(study):
        print(line)
    return 0


class SweepSummary(Callback):
    """Hydra callback: summarize the sweep dir when a multirun ends; exit 1 if any job failed."""

    def on_multirun_end(self, config, **kwargs) -> None:
        rows = summarize(config.hydra.sweep.dir)
        failed = sum(row["status"].startswith("failed") for row in rows)
        if failed:
            raise Escalated(FailedItemsError(f"{failed} of {len(rows)} jobs failed (see the status column)"))


def main(argv: list[str], prog: str = "mnist-exp-summarize") -> int:
    import argparse

    class OneLineParser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # one line, like every other command (mnist_exp/cli.py)
            raise ConfigError(f"{message}; see {self.prog} --help")

    parser = OneLineParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, nargs="?", help="a sweep dir, or any dir holding runs (e.g. outputs/)")
    parser.add_argument("--sort", default=METRIC, help=f"column to order by (default {METRIC})")
    parser.add_argument(
        "--where", action="append", default=[], metavar="KEY=VALUE", help="keep matching runs (repeatable)"
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help='two groups by their overrides, e.g. --compare "optimizer.lr=0.001" "optimizer.lr=0.003": '
        "the difference in test accuracy with its 95%% CI and Welch's p-value",
    )
    parser.add_argument(
        "--by-budget", action="store_true", help="order runs by training budget (epochs, batches) first, then --sort"
    )
    parser.add_argument(
        "--storage", metavar="URL", help="an Optuna study's database URL or journal file: summarize the whole study"
    )
    parser.add_argument("--study", default="mnist-exp", help="the study's name, with --storage (default mnist-exp)")
    args = parser.parse_args(argv)
    if args.storage:
        return summarize_study(args.storage, args.study, args.dir)
    if args.dir is None:
        parser.error("give a DIR, or --storage URL for a whole Optuna study")
    if not args.dir.is_dir():
        raise ConfigError(f"{args.dir}: no such directory")
    where = args.where
    parsed(where)  # a malformed --where is refused before the dir is read
    if (args.dir / "multirun.yaml").is_file() and not where and args.sort == METRIC and not args.by_budget:
        rows = summarize(args.dir)
    else:
        if args.sort not in RUN_COLUMNS:
            raise ConfigError(f"--sort {args.sort}: not a column; choose from {', '.join(RUN_COLUMNS)}")
        rows = summarize_runs(args.dir, where, args.sort, args.by_budget)
    if not rows:
        raise ConfigError(
            f"{args.dir}: no runs (dirs with .hydra/overrides.yaml) found" + (" that match" if where else "")
        )
    if args.compare:
        for line in comparison_lines(compare(rows, *args.compare)):
            print(line)
    return 0
