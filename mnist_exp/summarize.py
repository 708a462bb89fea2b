"""Summarize a sweep: one row per job, sorted by best validation accuracy.

  python -m mnist_exp.summarize SWEEP_DIR

Reads each job dir's .hydra/overrides.yaml, metrics.json (finished) or failure.json (failed),
so it works on any sweep dir, whatever the sweeper or launcher, also after a crash or while
jobs still run (status `running`). Writes summary.csv, summary.md and summary.png (the metric
against each swept parameter) into the sweep dir and prints the table. Every multirun does this
at its end through `SweepSummary`, a Hydra callback (conf/hydra/default.yaml), and then exits
non-zero if any job failed.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback

COLUMNS = ["job", "overrides", "status", "val_acc_best", "test_acc", "epochs", "wall_seconds", "run_dir"]
METRIC = "val_acc_best"


def job_number(job_dir: Path) -> int:
    head = job_dir.name.split("_", 1)[0]
    return int(head) if head.isdigit() else -1


def collect(sweep_dir: str | Path) -> list[dict]:
    sweep_dir = Path(sweep_dir)
    rows = []
    for overrides_file in sweep_dir.glob("*/.hydra/overrides.yaml"):
        job_dir = overrides_file.parent.parent
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        row = {column: "" for column in COLUMNS}
        row.update(job=job_number(job_dir), overrides=",".join(overrides), run_dir=job_dir.name, status="running")
        if (job_dir / "metrics.json").exists():
            metrics = json.loads((job_dir / "metrics.json").read_text())
            row.update(
                status="ok",
                val_acc_best=round(metrics["val/acc_best"], 6),
                test_acc=round(metrics["test/acc"], 6),
                epochs=metrics["epochs"],
                wall_seconds=metrics.get("wall_seconds", ""),
            )
        elif (job_dir / "failure.json").exists():
            failure = json.loads((job_dir / "failure.json").read_text())
            row.update(status=f"failed: {failure['error']}", wall_seconds=failure.get("wall_seconds", ""))
        rows.append(row)
    order = {"ok": 0, "running": 1}
    return sorted(rows, key=lambda r: (order.get(r["status"], 2), -(r[METRIC] or 0.0), r["job"]))


def to_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row[c]).replace("|", "\\|") for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def swept_parameters(rows: list[dict]) -> dict[str, list[str]]:
    """override key -> its value per row, for the keys whose value differs between jobs."""
    values: dict[str, list[str]] = {}
    parsed = [dict(o.split("=", 1) for o in row["overrides"].split(",") if "=" in o) for row in rows]
    for key in sorted({k for p in parsed for k in p}):
        column = [p.get(key, "") for p in parsed]
        if len(set(column)) > 1:
            values[key] = column
    return values


def plot(rows: list[dict], path: Path) -> None:
    from mnist_exp.plots import pyplot

    plt = pyplot()

    done = [r for r in rows if r["status"] == "ok"]
    params = swept_parameters(done)
    if not done or not params:
        return
    figure, axes = plt.subplots(1, len(params), figsize=(4 * len(params), 3.2), squeeze=False)
    for ax, (key, column) in zip(axes[0], params.items()):
        metric = [r[METRIC] for r in done]
        try:
            x = [float(v) for v in column]
            ax.scatter(x, metric)
            if min(x) > 0 and max(x) / min(x) >= 20:
                ax.set_xscale("log")
        except ValueError:  # categorical values
            labels = sorted(set(column))
            ax.scatter([labels.index(v) for v in column], metric)
            ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_xlabel(key)
        ax.set_ylabel("val/acc_best")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def print_table(rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    shown = [c for c in COLUMNS if c != "run_dir"]  # the run dir repeats the overrides; it is in the files
    table = Table(title=title, title_justify="left")
    for column in shown:
        table.add_column(column, overflow="fold", justify="left" if column in ("overrides", "status") else "right")
    for row in rows:
        style = "red" if row["status"].startswith("failed") else None
        table.add_row(*[f"{row[c]:.4f}" if isinstance(row[c], float) and c != "wall_seconds" else str(row[c]) for c in shown], style=style)
    Console().print(table)


def summarize(sweep_dir: str | Path) -> list[dict]:
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    (sweep_dir / "summary.csv").write_text(to_csv(rows))
    (sweep_dir / "summary.md").write_text(to_markdown(rows))
    plot(rows, sweep_dir / "summary.png")
    print_table(rows, f"sweep {sweep_dir} ({len(rows)} jobs)")
    return rows


class SweepSummary(Callback):
    """Hydra callback: summarize the sweep dir when a multirun ends; exit 1 if any job failed."""

    def on_multirun_end(self, config, **kwargs) -> None:
        rows = summarize(config.hydra.sweep.dir)
        failed = sum(row["status"].startswith("failed") for row in rows)
        if failed:
            print(f"{failed} of {len(rows)} jobs failed (see the status column)", file=sys.stderr)
            raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    sweep_dir = Path(argv[0])
    if not sweep_dir.is_dir():
        print(f"{sweep_dir}: no such directory", file=sys.stderr)
        return 2
    rows = summarize(sweep_dir)
    if not rows:
        print(f"{sweep_dir}: no job dirs (with .hydra/overrides.yaml) found", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
