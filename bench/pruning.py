"""The same Optuna search with and without pruning: wall time and best validation accuracy.

  python bench/pruning.py                    # 20 trials over the default space (hparams_search=optuna)
  python bench/pruning.py --trials 8 --extra trainer.limit_train_batches=0.2

The searches use the same sampler seed (`seed=42`) and run at the same time, one torch thread each
(`torch_threads=1`, `trainer=cpu`), so that whatever else the machine does slows them alike; the ratio is
the figure to read, not the seconds. A search that ends first leaves the cores to the others, which then
run faster: the pruned searches' ratios err on the high side. The unpruned one is
`hydra/sweeper/pruner=none`, the pruned ones the preset's default (median pruner) and
`hydra/sweeper/pruner=hyperband`. Prints a table naming the hardware; each search's study stays in its
sweep dir (optuna.journal) for mnist-exp-summarize or optuna-dashboard.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import hardware_line  # noqa: E402

SEARCH = ["hparams_search=optuna", "trainer=cpu", "torch_threads=1", "seed=42"]
VARIANTS = {
    "no pruning": ["hydra/sweeper/pruner=none"],
    "median pruner (default)": [],
    "hyperband pruner": ["hydra/sweeper/pruner=hyperband"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("/tmp/mnist-exp-pruning-bench"))
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for both searches")
    args = parser.parse_args()
    started, processes = {}, {}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, overrides in VARIANTS.items():
        sweep_dir = args.out / name.split()[0]
        command = [sys.executable, "-m", "mnist_exp", *SEARCH, *overrides, *args.extra]
        command += [f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweep.dir={sweep_dir}"]
        started[name] = time.perf_counter()
        log = open(args.out / f"{sweep_dir.name}.log", "w")  # a file, not a pipe: neither search waits on a reader
        processes[name] = (subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), sweep_dir, log)
    walls = {}
    while len(walls) < len(processes):  # each search's wall time, whichever ends first
        for name, (process, _, _) in processes.items():
            if name not in walls and process.poll() is not None:
                walls[name] = time.perf_counter() - started[name]
        time.sleep(0.5)
    rows = []
    for name, (process, sweep_dir, log) in processes.items():
        log.close()
        wall = walls[name]
        if process.returncode != 0:
            sys.exit(f"{name}: the search failed; see {log.name}")
        results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
        rows.append((name, wall, results["best_value"], results["trials"], sweep_dir))
    reference = rows[0][1]
    print(f"\nHardware: {hardware_line()}")
    print(
        f"{'search':26} {'wall s':>8} {'vs unpruned':>11} {'best val acc':>12} {'complete':>8} {'pruned':>6}  sweep dir"
    )
    for name, wall, best, trials, sweep_dir in rows:
        print(
            f"{name:26} {wall:>8.1f} {wall / reference:>10.0%} {best:>12.4f} "
            f"{trials['complete']:>8} {trials['pruned']:>6}  {sweep_dir}"
        )


if __name__ == "__main__":
    main()
