"""Wall time of one Optuna study run by 1 worker against 2 workers, same number of trials, on a real PostgreSQL.

  python bench/study_workers.py                 # 6 trials: 1 worker x 6, then 2 workers x 3 at once
  python bench/study_workers.py --trials 4

Each trial is a short MNIST run (1 epoch on 20% of the training set, channels 16 and batch 128 held
fixed so that trials cost about the same; lr, dropout and scheduler are searched). The two-worker
variants split this machine's cores: `torch_threads=cores/2` per worker, and once with torch's
default (every worker uses every core: oversubscribed). Needs the PostgreSQL server binaries
(tests/postgres.py starts a throwaway server). Prints a table naming the hardware.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import hardware_line  # noqa: E402
from tests.postgres import postgres_server  # noqa: E402

TRIAL = [
    "hparams_search=optuna",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=0.2",
    "model.channels=16",
    "data.batch_size=128",
    "trainer=cpu",
]


def run_workers(
    server, study: str, workers: int, trials_each: int, out: Path, threads: int | None
) -> tuple[float, list[str]]:
    extra = [f"torch_threads={threads}"] if threads else []
    env = {**os.environ, "PGPASSWORD": server.password}
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mnist_exp",
                *TRIAL,
                *extra,
                f"hydra.sweeper.n_trials={trials_each}",
                f"hydra.sweeper.study_name={study}",
                f"hydra.sweeper.storage={server.url()}",
                f"seed={worker}",
                f"hydra.sweep.dir={out / study / f'worker{worker}'}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for worker in range(workers)
    ]
    logs = [p.communicate()[0] for p in processes]
    wall = time.perf_counter() - started
    for p, log in zip(processes, logs, strict=False):
        if p.returncode != 0:
            sys.exit(f"a worker failed:\n{log[-3000:]}")
    return wall, logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("/tmp/mnist-exp-study-bench"))
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rows = []
    with postgres_server() as server:
        one, _ = run_workers(server, "one-worker", 1, args.trials, args.out, None)
        rows.append(("1 worker", args.trials, one))
        split, _ = run_workers(server, "two-split", 2, args.trials // 2, args.out, max(1, cores // 2))
        rows.append((f"2 workers, torch_threads={max(1, cores // 2)}", args.trials // 2, split))
        both, _ = run_workers(server, "two-default", 2, args.trials // 2, args.out, None)
        rows.append(("2 workers, default threads", args.trials // 2, both))
    print(f"\nHardware: {hardware_line()}")
    print(f"{'variant':32} {'trials/worker':>13} {'wall s':>8} {'vs 1 worker':>12}")
    for name, each, wall in rows:
        print(f"{name:32} {each:>13} {wall:>8.1f} {one / wall:>11.2f}x")


if __name__ == "__main__":
    main()
