"""Benchmark the project against plain PyTorch on this machine, in one run, alternating variants.

  python bench/run.py                      # both tables (about 10 minutes on 2 CPU cores)
  python bench/run.py --only throughput    # table 1 only
  python bench/run.py --only time-to-99    # table 2 only
  python bench/run.py --only settings      # thread / loader-worker settings of the project
  python bench/run.py --emulate-avx2       # every process under ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
  python bench/run.py --only precision     # fp32 against bf16 autocast, one quarter epoch each
  python bench/run.py --only learning      # where a run's time goes: fast and default phase by phase against
                                           # one plain-loop epoch, a sweep's fit fraction, two runs at once

Every table names the hardware it ran on (CPU model, torch's CPU capability, native bf16 or not,
the GPU if any) and the precision of each row: `auto` is resolved by mnist_exp/hardware.py.

Table 1, one training epoch of the tutorial CNN (Adam 1e-3, batch 64), repeated --reps times
in the order a, b, c, a, b, c, ...; medians:
  a  the tutorial's loop (per-item torchvision DataLoader, plain PyTorch)   bench/loops.py tutorial
  b  a raw in-memory PyTorch loop of the same model                          bench/loops.py inmemory
  c  the project through its own entry point, in fp32 like a and b
     (python -m mnist_exp experiment=tutorial trainer.precision=32-true)
  c0 the same with the NCHW memory layout that a and b use                   ... module.channels_last=false
Images/s count training batches only (each variant times its own training loop); s/epoch is
60,000 / images/s; peak RSS is the whole process's. Table 2: wall time from process start to
exit for `experiment=fast`, one run per seed, against the tutorial loop trained until its test
accuracy reaches 99.0% (checked after every epoch, as the tutorial does).
Absolute times on shared machines are noisy; compare the ratios, which come from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ENV = dict(os.environ)  # every measured process's environment (--emulate-avx2 adds the ISA caps)
AVX2_EMULATION = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
HARDWARE = """
import json
from mnist_exp.hardware import describe, device_type, resolve_precision
device = device_type("auto")
print(json.dumps({**describe(device), "auto_precision": resolve_precision("auto", "auto")[0]}))
"""


def hardware_line() -> str:
    """The hardware as the measured processes see it (in the same environment)."""
    info = json.loads(
        subprocess.run([PYTHON, "-c", HARDWARE], cwd=ROOT, env=ENV, capture_output=True, text=True, check=True).stdout
    )
    caps = ", ".join(f"{k}={v}" for k, v in info.get("isa_caps", {}).items())
    kind = "native bf16 (AMX/AVX512-BF16)" if info["native_bf16_cpu"] and not caps else "no native bf16"
    line = f"CPU {info['cpu']}, torch CPU capability {info['cpu_capability']} ({kind}), {info['cpu_threads']} threads"
    if caps:
        line += f", emulated older CPU: {caps}"
    if info["gpu"]:
        line += f"; GPU {info['gpu']}"
    return line + f"; precision auto -> {info['auto_precision']}"


def run_measured(command: list[str]) -> dict:
    """Run a command; return its wall seconds, peak RSS (MB) and output."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=ENV)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        log.seek(0)
        output = log.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} exited {code}:\n{output[-3000:]}")
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024, "output": output}


def ensure_mnist() -> Path:
    """Fetch and verify MNIST exactly as the project does, before anything is timed."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from mnist_exp.data.sources import ensure_files

    spec = OmegaConf.load(ROOT / "mnist_exp" / "conf" / "data" / "mnist.yaml")
    checksums = {f.file: f.sha256 for f in spec.files.values()}
    return ensure_files("mnist", checksums, [instantiate(s) for s in spec.sources], ROOT / "data")


def loop_variant(loop: str, workdir: Path, *extra: str) -> dict:
    out = workdir / f"{loop}-{time.monotonic_ns()}.json"
    result = run_measured([PYTHON, "bench/loops.py", loop, "--out", str(out), *extra])
    epochs = json.loads(out.read_text())["epochs"]
    return {
        **result,
        "images_per_second": epochs[0]["images_per_second"],
        "test_acc": epochs[-1]["test_acc"],
        "epochs": len(epochs),
    }


def project_variant(workdir: Path, *overrides: str) -> dict:
    """One run of the project, process start to exit: wall, peak RSS, images/s, test accuracy, epochs,
    precision, and its phases: start-up (to the first training step), fit, after fit (fit's end to exit)."""
    run_dir = workdir / f"run-{time.monotonic_ns()}"
    started = time.time()
    result = run_measured([PYTHON, "-m", "mnist_exp", *overrides, f"hydra.run.dir={run_dir}"])
    ended = time.time()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        **result,
        "images_per_second": metrics.get("train_images_per_second", float("nan")),
        "test_acc": metrics["test/acc"],
        "epochs": metrics["epochs"],
        "precision": metrics.get("precision", "?"),
        "start-up": metrics["first_train_step_at"] - started,
        "fit": metrics["fit_seconds"],
        "after fit": ended - metrics["fit_ended_at"],
    }


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def md_row(*cells) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def throughput_table(reps: int, workdir: Path) -> str:
    variants = {
        "a. tutorial loop (torchvision DataLoader)": lambda: loop_variant("tutorial", workdir),
        "b. raw in-memory PyTorch loop": lambda: loop_variant("inmemory", workdir),
        "c. mnist-exp (`python -m mnist_exp experiment=tutorial trainer.max_epochs=1 "
        "trainer.precision=32-true`)": lambda: project_variant(
            workdir, "experiment=tutorial", "trainer.max_epochs=1", "trainer.precision=32-true"
        ),
        "c0. c in the NCHW layout of a and b (`module.channels_last=false`)": lambda: project_variant(
            workdir,
            "experiment=tutorial",
            "trainer.max_epochs=1",
            "trainer.precision=32-true",
            "module.channels_last=false",
        ),
    }
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for rep in range(reps):
        for name, run in variants.items():
            results[name].append(run())
            print(
                f"  rep {rep + 1}/{reps} {name[:2]} {results[name][-1]['images_per_second']:.0f} images/s",
                file=sys.stderr,
            )
    lines = [
        f"| variant | images/s (median of {reps}) | s/epoch (60k) | test acc after 1 epoch | peak RSS | process wall |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        rate = median(rows, "images_per_second")
        accuracy, rss, wall = median(rows, "test_acc"), median(rows, "rss_mb"), median(rows, "wall")
        lines.append(
            md_row(name, f"{rate:,.0f}", f"{60000 / rate:.1f}", f"{accuracy:.2%}", f"{rss:,.0f} MB", f"{wall:.1f} s")
        )
    a, b, c, c0 = (median(rows, "images_per_second") for rows in results.values())
    per_rep = ", ".join(
        f"{rc['images_per_second'] / rb['images_per_second']:.2f}"
        for rb, rc in zip(*list(results.values())[1:3], strict=True)
    )
    lines += ["", f"c/a = {c / a:.2f}, c/b = {c / b:.2f} (medians; c/b per rep: {per_rep}); c0/b = {c0 / b:.2f}"]
    return "\n".join(lines)


def time_to_99_table(seeds: list[int], max_tutorial_epochs: int, workdir: Path) -> str:
    lines = [
        "| recipe | seed | precision | wall, process start to exit | epochs | test acc | reached 99.0% |",
        "|---|---|---|---|---|---|---|",
    ]
    fast_walls = []
    for seed in seeds:
        row = project_variant(workdir, "experiment=fast", f"seed={seed}")
        fast_walls.append(row["wall"])
        reached = "yes" if row["test_acc"] >= 0.99 else "no"
        cells = (f"{row['precision']} (auto)", f"{row['wall']:.1f} s", row["epochs"], f"{row['test_acc']:.2%}", reached)
        lines.append(md_row("`experiment=fast`", seed, *cells))
        print(f"  fast seed {seed}: {row['wall']:.1f} s, {row['test_acc']:.4f}", file=sys.stderr)
    row = loop_variant("tutorial", workdir, "--epochs", str(max_tutorial_epochs), "--until", "0.99")
    reached = row["test_acc"] >= 0.99
    verdict = "yes" if reached else f"no (stopped at {max_tutorial_epochs} epochs)"
    cells = (f"{row['wall']:.1f} s", row["epochs"], f"{row['test_acc']:.2%}", verdict)
    lines.append(md_row("tutorial loop until 99%", 0, "32-true", *cells))
    fast = statistics.median(fast_walls)
    lines += [
        "",
        f"median `experiment=fast` wall: {fast:.1f} s; "
        f"tutorial loop {'to 99%' if reached else 'without reaching 99%'}: "
        f"{row['wall']:.1f} s ({row['wall'] / fast:.1f}x)",
    ]
    return "\n".join(lines)


def sweep_fit_fraction(workdir: Path, jobs: int = 4) -> dict:
    """A grid sweep of `jobs` one-epoch default runs in one process (the basic launcher): the share of its
    wall time that went to fit."""
    sweep_dir = workdir / f"sweep-{time.monotonic_ns()}"
    seeds = ",".join(str(seed) for seed in range(jobs))
    result = run_measured(
        [PYTHON, "-m", "mnist_exp", "-m", f"seed={seeds}", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep_dir}"]
    )
    fits = [json.loads(path.read_text())["fit_seconds"] for path in sweep_dir.glob("*/metrics.json")]
    if len(fits) != jobs:
        raise SystemExit(f"the sweep in {sweep_dir} finished {len(fits)} of {jobs} jobs")
    return {"wall": result["wall"], "fit": sum(fits), "fraction": sum(fits) / result["wall"]}


def two_at_once(workdir: Path) -> list[float]:
    """Two one-epoch default runs started together: each one's training images/s."""
    run_dirs = [workdir / f"together-{i}-{time.monotonic_ns()}" for i in range(2)]
    with tempfile.TemporaryFile("w+") as log:
        processes = [
            subprocess.Popen(
                [PYTHON, "-m", "mnist_exp", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=ENV,
            )
            for run_dir in run_dirs
        ]
        if any(process.wait() for process in processes):
            log.seek(0)
            raise SystemExit(f"two runs at once: a run failed:\n{log.read()[-3000:]}")
    return [json.loads((run_dir / "metrics.json").read_text())["train_images_per_second"] for run_dir in run_dirs]


def learning_table(reps: int, workdir: Path) -> str:
    """Where the time goes (issue: time goes to learning): `fast` and a one-epoch default run phase by phase,
    one epoch of the tutorial's plain loop, a sweep's fit fraction, two runs at once."""
    variants = {
        "`experiment=fast`": lambda: project_variant(workdir, "experiment=fast"),
        "default, `trainer.max_epochs=1`": lambda: project_variant(workdir, "trainer.max_epochs=1"),
        "tutorial's plain loop, 1 epoch (bench/loops.py tutorial)": lambda: loop_variant("tutorial", workdir),
    }
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for rep in range(reps):
        for name, run in variants.items():
            results[name].append(run())
            print(f"  rep {rep + 1}/{reps} {name}: {results[name][-1]['wall']:.1f} s", file=sys.stderr)
    lines = [
        f"| run (median of {reps}) | precision | wall, process start to exit | start-up | fit | after fit "
        "| train images/s | test acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        phases = [f"{median(rows, key):.2f} s" if key in rows[0] else "" for key in ("start-up", "fit", "after fit")]
        precision = rows[0].get("precision", "32-true")
        lines.append(
            md_row(
                name,
                precision,
                f"{median(rows, 'wall'):.1f} s",
                *phases,
                f"{median(rows, 'images_per_second'):,.0f}",
                f"{median(rows, 'test_acc'):.2%}",
            )
        )
    fast, default, tutorial = (median(rows, "wall") for rows in results.values())
    reached = median(results["`experiment=fast`"], "test_acc") >= 0.99
    sweep = sweep_fit_fraction(workdir)
    print(f"  sweep: {sweep['wall']:.1f} s, {sweep['fraction']:.0%} in fit", file=sys.stderr)
    alone = median(results["default, `trainer.max_epochs=1`"], "images_per_second")
    together = two_at_once(workdir)
    print(f"  two at once: {together}", file=sys.stderr)
    lines += [
        "",
        f"- one epoch of the plain loop / `experiment=fast`, process start to exit: {tutorial / fast:.2f}x "
        f"(fast {'reached' if reached else 'did NOT reach'} 99.0%; goal >= 1.5x)",
        f"- a sweep of 4 one-epoch default jobs (`-m seed=0,1,2,3 trainer.max_epochs=1`, basic launcher): "
        f"{sweep['wall']:.1f} s, {sweep['fit']:.1f} s of it in fit: {sweep['fraction']:.0%} (goal >= 70%)",
        f"- two one-epoch default runs started together: {together[0]:,.0f} and {together[1]:,.0f} images/s, "
        f"{min(together) / alone:.0%} and {max(together) / alone:.0%} of one run alone ({alone:,.0f}; goal >= 40%)",
    ]
    return "\n".join(lines)


def settings_table(reps: int, workdir: Path) -> str:
    settings = {
        "torch_threads=1": ["torch_threads=1"],
        "torch_threads=2 (default: torch's one per core)": [],
        "torch_threads=4": ["torch_threads=4"],
        "data.num_workers=2": ["data.num_workers=2"],
    }
    results = {name: [] for name in settings}
    for _ in range(reps):
        for name, overrides in settings.items():
            results[name].append(project_variant(workdir, "experiment=tutorial", "trainer.max_epochs=1", *overrides))
    lines = [f"| setting (experiment=tutorial, 1 epoch) | images/s (median of {reps}) |", "|---|---|"]
    lines += [f"| {name} | {median(rows, 'images_per_second'):,.0f} |" for name, rows in results.items()]
    return "\n".join(lines)


def precision_table(reps: int, workdir: Path) -> str:
    """What bf16 autocast costs or gains on this CPU: the fast preset for a quarter epoch in each precision."""
    precisions = ("32-true", "bf16-mixed")
    results = {p: [] for p in precisions}
    for _ in range(reps):
        for precision in precisions:
            results[precision].append(
                project_variant(
                    workdir,
                    "experiment=fast",
                    "trainer.max_epochs=1",
                    "trainer.limit_train_batches=0.25",
                    f"trainer.precision={precision}",
                )
            )
    lines = [f"| `experiment=fast`, a quarter epoch | images/s (median of {reps}) |", "|---|---|"]
    lines += [f"| trainer.precision={p} | {median(rows, 'images_per_second'):,.0f} |" for p, rows in results.items()]
    ratio = median(results["bf16-mixed"], "images_per_second") / median(results["32-true"], "images_per_second")
    return "\n".join([*lines, "", f"bf16-mixed / 32-true = {ratio:.2f}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["throughput", "time-to-99", "settings", "precision", "learning"])
    parser.add_argument("--emulate-avx2", action="store_true", help="run every measured process as on an AVX2-only CPU")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-tutorial-epochs", type=int, default=15)
    args = parser.parse_args()

    if args.emulate_avx2:
        ENV.update(AVX2_EMULATION)
    ensure_mnist()
    sections = []
    hardware = f"Hardware: {hardware_line()}"
    header = f"mnist-exp bench, {datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}"
    with tempfile.TemporaryDirectory(prefix="mnist-exp-bench-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "throughput"):
            sections.append(
                "### Throughput: one epoch, same model, optimizer and batch size\n\n"
                + hardware
                + "\n\n"
                + throughput_table(args.reps, workdir)
            )
        if args.only in (None, "time-to-99"):
            sections.append(
                "### Time to 99% test accuracy\n\n"
                + hardware
                + "\n\n"
                + time_to_99_table(args.seeds, args.max_tutorial_epochs, workdir)
            )
        if args.only == "precision":
            sections.append(
                "### Precision: fp32 against bf16 autocast\n\n"
                + hardware
                + "\n\n"
                + precision_table(args.reps, workdir)
            )
        if args.only == "learning":
            sections.append("### Where a run's time goes\n\n" + hardware + "\n\n" + learning_table(args.reps, workdir))
        if args.only == "settings":
            sections.append(
                "### Threads and loader workers\n\n" + hardware + "\n\n" + settings_table(args.reps, workdir)
            )
    report = f"{header}\n\n" + "\n\n".join(sections) + "\n"
    results_dir = ROOT / "outputs" / "bench"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{datetime.now():%Y-%m-%d_%H-%M-%S}.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
