"""What each piece of a run's work after fit costs: one one-epoch default run (`python -m mnist_exp
trainer.max_epochs=1`) in this process, with a clock around each piece of the final test and report.

  python bench/after_fit.py                     # on this CPU
  python bench/after_fit.py --emulate-avx2      # as on an AVX2-only CPU (on an AMX/AVX-512 machine)

Prints one row per piece (seconds, in the order they ran) and "after fit", fit's end to process exit,
with the hardware. The clocks wrap the project's own functions; nothing else changes.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PIECES = {  # (module, attribute): what the row says
    ("pytorch_lightning", "Trainer.test"): "final test, in all (the pieces below are inside it)",
    ("mnist_exp.analysis.report", "integrated_gradients"): "Integrated Gradients maps of the shown mistakes",
    ("mnist_exp.analysis.report", "reliability_figure"): "reliability figure (drawn)",
    ("mnist_exp.analysis.report", "confusion_figure"): "confusion matrix figure (drawn)",
    ("mnist_exp.analysis.report", "mistakes_figure"): "mistakes figure (drawn)",
    ("mnist_exp.analysis.report", "publish"): "the three figures encoded, written, logged",
    ("mnist_exp.analysis.report", "print_report"): "per-class and confusion tables printed",
    ("mnist_exp.analysis.insight", "add_embedding"): "projector embedding of the 10,000 test digits",
    ("mnist_exp.training.recipe", "log_experiment"): "TensorBoard HParams entry",
    ("mnist_exp.training.recipe", "print_summary"): "summary printed",
}


def clock(module: str, attribute: str, spans: list) -> None:
    """Replace module.attribute (a function or Class.method) with one that notes when it ran."""
    owner = importlib.import_module(module)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    @functools.wraps(original)
    def clocked(*args, **kwargs):
        started = time.time()
        try:
            return original(*args, **kwargs)
        finally:
            spans.append((started, time.time(), (module, attribute)))

    setattr(owner, name, clocked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emulate-avx2", action="store_true")
    args = parser.parse_args()
    if args.emulate_avx2 and os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":  # set before torch is imported
        env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)
    from bench.run import ensure_mnist, hardware_line

    ensure_mnist()
    spans: list = []
    for module, attribute in PIECES:
        clock(module, attribute, spans)
    run_dir = Path(tempfile.mkdtemp(prefix="mnist-exp-after-fit-")) / "run"

    def report() -> None:  # at exit: after everything the run does
        ended = time.time()
        metrics = json.loads((run_dir / "metrics.json").read_text())
        print(f"\nHardware: {hardware_line()}")
        print(f"one-epoch default run, precision {metrics['precision']}, test accuracy {metrics['test/acc']:.2%}\n")
        print("| piece | seconds |\n|---|---|")
        for started, stopped, key in sorted(spans):
            print(f"| {PIECES[key]} | {stopped - started:.2f} |")
        after = ended - metrics["fit_ended_at"]
        print(f"| **after fit: fit's end to the exit handlers (interpreter teardown not counted)** | {after:.2f} |")

    atexit.register(report)
    os.chdir(ROOT)
    sys.argv = ["mnist_exp", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"]
    from mnist_exp.cli import train

    train()


if __name__ == "__main__":
    main()
