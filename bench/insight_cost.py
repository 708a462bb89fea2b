"""What seeing inside the model costs a default run: wall time from process start to exit of
`python -m mnist_exp trainer=cpu` at this tree against an earlier revision (before the filters, feature
maps, projector, attribution maps and calibration report), and against this tree with them turned off.

  python bench/insight_cost.py --before e27646d          # 3 runs of each, alternating
  python bench/insight_cost.py --before e27646d --reps 5

The earlier revision is checked out with `git worktree` into a temp dir (its data/ a link to this one's).
Variants run in the order a, b, c, a, b, c, ... so that a machine that slows down slows all alike;
medians and their ratio to the earlier revision are printed with the hardware.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import hardware_line  # noqa: E402

OFF = [
    "callbacks.model_insight.digits=0",
    "callbacks.model_insight.embedding=0",
    "callbacks.test_report.attributions=false",
]


def timed_run(tree: Path, overrides: list[str], run_dir: Path) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", "mnist_exp", "trainer=cpu", *overrides, f"hydra.run.dir={run_dir}"]
    subprocess.run(command, cwd=tree, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the revision to compare with")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mnist-exp-insight-cost-") as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True)
        try:
            (before / "data").symlink_to(ROOT / "data")
            variants = {
                f"before ({args.before})": (before, []),
                "this tree": (ROOT, []),
                "this tree, insight off": (ROOT, OFF),
            }
            times: dict[str, list[float]] = {name: [] for name in variants}
            for rep in range(args.reps):
                for number, (name, (tree, overrides)) in enumerate(variants.items()):
                    times[name].append(timed_run(tree, overrides, Path(tmp) / f"run{rep}-{number}"))
                    print(f"{name}: {times[name][-1]:.1f} s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=True)
    reference = statistics.median(next(iter(times.values())))
    print(f"\nHardware: {hardware_line()}")
    print(f"default recipe, trainer=cpu, {args.reps} runs each, wall time from process start to exit")
    print(f"{'variant':34} {'median s':>9} {'vs before':>10}  runs")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:34} {median:>9.1f} {median / reference:>9.0%}  {' '.join(f'{v:.1f}' for v in values)}")


if __name__ == "__main__":
    main()
