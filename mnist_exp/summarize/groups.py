"""Seeds as replicates: runs that differ only in `seed` form a group, and a group's metrics are reported as
mean, standard deviation and a 95% confidence interval; two groups are compared with Welch's t-test.

A run's group is its command-line overrides without `seed` (parsed with Hydra's parser, so a list value
such as `model.sizes=[8,16]` stays one override). The 95% confidence interval of a mean is
t(0.975, n-1) * std / sqrt(n); a difference of two means gets Welch's interval (unequal variances,
Welch-Satterthwaite degrees of freedom) and Welch's two-sided p-value (scipy.stats.ttest_ind with
equal_var=False). One run gives a mean and no spread: its std and interval are left empty. Runs that
share a seed are the same run again, not independent samples: a group counts distinct seeds (`n`), each
seed one sample (the mean of its repeats), and its seeds column marks a repeated seed with its count
(`42x3`).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from mnist_exp.config import parse_overrides
from mnist_exp.errors import ConfigError

METRICS = ("test_acc", "val_acc_best", "fit_seconds")
GROUP_COLUMNS = ["group", "n", "seeds", *[f"{m}_{s}" for m in METRICS for s in ("mean", "std", "ci95")]]
DEFAULTS = "(defaults)"


def group_of(overrides: list[str]) -> str:
    """The run's group: its overrides without seed, in a fixed order."""
    kept = sorted(o.input_line for o in parse_overrides(overrides) if o.key_or_group != "seed")
    return " ".join(kept) or DEFAULTS


def seed_of(overrides: list[str], default: Any = "") -> Any:
    seeds = [o.value() for o in parse_overrides(overrides) if o.key_or_group == "seed"]
    return seeds[-1] if seeds else default


def spread(values: list[float]) -> tuple[float, float | None, float | None]:
    """(mean, sample standard deviation, half-width of the 95% confidence interval of the mean)."""
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None
    std = statistics.stdev(values)
    return mean, std, float(stats.t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))


def numbers(rows: list[dict], metric: str) -> list[float]:
    return [float(row[metric]) for row in rows if isinstance(row.get(metric), (int, float))]


def by_seed(members: list[dict]) -> dict[Any, list[dict]]:
    """A group's runs by seed, seeds in order. Runs of one seed are the same run again (on the same code
    and CPU, bit for bit): together they are one sample, not several."""
    seeds: dict[Any, list[dict]] = {}
    for row in members:
        seeds.setdefault(row["seed"], []).append(row)
    return dict(sorted(seeds.items(), key=lambda item: (not isinstance(item[0], int), str(item[0]).zfill(20))))


def samples(members: list[dict], metric: str) -> list[float]:
    """One value per distinct seed (the mean over that seed's repeats)."""
    per_seed = [numbers(runs, metric) for runs in by_seed(members).values()]
    return [statistics.fmean(values) for values in per_seed if values]


def seeds_label(members: list[dict]) -> str:
    """'0,1,2', with a seed run more than once marked by its count: '42x3'."""
    return ",".join(f"{seed}x{len(runs)}" if len(runs) > 1 else str(seed) for seed, runs in by_seed(members).items())


def group_rows(rows: list[dict]) -> list[dict]:
    """One row per group of finished runs: n (distinct seeds), the seeds, and each metric's mean, std and
    ci95 over one sample per seed."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["status"] == "ok":
            groups.setdefault(row["group"], []).append(row)
    table = []
    for name, members in groups.items():
        out: dict[str, Any] = {"group": name, "n": len(by_seed(members)), "seeds": seeds_label(members)}
        for metric in METRICS:
            values = samples(members, metric)
            mean, std, ci95 = spread(values) if values else (None, None, None)
            for stat, value in (("mean", mean), ("std", std), ("ci95", ci95)):
                out[f"{metric}_{stat}"] = "" if value is None else round(value, 6)
        table.append(out)
    return sorted(table, key=lambda g: -(g["test_acc_mean"] or 0.0) if g["test_acc_mean"] != "" else 0.0)


def same_value(given: Any, actual: Any) -> bool:
    """Values compared as values: 1e-3 and 0.001 are the same learning rate."""
    if isinstance(given, (int, float)) and isinstance(actual, (int, float)) and not isinstance(given, bool):
        return math.isclose(float(given), float(actual), rel_tol=1e-12)
    return str(given) == str(actual)


def members(rows: list[dict], spec: str) -> tuple[str, list[dict]]:
    """The finished runs of the one group that `spec` (KEY=VALUE ..., Hydra syntax) names."""
    wanted = parse_overrides(spec.split())
    matching = []
    for row in rows:
        if row["status"] != "ok":
            continue
        have = {o.key_or_group: o.value() for o in parse_overrides(row["_overrides"])}
        if all(w.key_or_group in have and same_value(w.value(), have[w.key_or_group]) for w in wanted):
            matching.append(row)
    names = sorted({row["group"] for row in matching})
    exact = group_of(spec.split())
    if len(names) > 1 and exact in names:  # the group with exactly these overrides (seed aside)
        names, matching = [exact], [row for row in matching if row["group"] == exact]
    if not names:
        raise ConfigError(f"--compare {spec!r}: no finished run has these overrides")
    if len(names) > 1:
        raise ConfigError(f"--compare {spec!r} matches {len(names)} groups ({'; '.join(names)}); name more keys")
    return names[0], matching


def compare(rows: list[dict], first: str, second: str, metric: str = "test_acc") -> dict:
    """second's mean minus first's, with Welch's 95% interval and p-value."""
    from scipy import stats

    (name_a, rows_a), (name_b, rows_b) = members(rows, first), members(rows, second)
    a, b = samples(rows_a, metric), samples(rows_b, metric)
    for spec, found, runs in ((first, a, rows_a), (second, b, rows_b)):
        if len(found) < 2:
            raise ConfigError(
                f"--compare {spec!r}: {len(found)} distinct seed{'' if len(found) == 1 else 's'} with {metric} "
                f"(seeds {seeds_label(runs) or 'none'}); a seed run again repeats the same run, so error bars "
                "need at least 2 distinct seeds a side: add runs with other seeds (seed=1,2,...)"
            )
    var_a, var_b = statistics.variance(a), statistics.variance(b)
    se2 = var_a / len(a) + var_b / len(b)
    difference = statistics.fmean(b) - statistics.fmean(a)
    if se2 == 0:
        df, half = float("inf"), 0.0
        p_value = 1.0 if difference == 0 else 0.0
    else:
        df = se2**2 / ((var_a / len(a)) ** 2 / (len(a) - 1) + (var_b / len(b)) ** 2 / (len(b) - 1))
        half = float(stats.t.ppf(0.975, df)) * math.sqrt(se2)
        p_value = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
    return {
        "metric": metric,
        "a": {"group": name_a, "n": len(a), "mean": statistics.fmean(a), "std": statistics.stdev(a)},
        "b": {"group": name_b, "n": len(b), "mean": statistics.fmean(b), "std": statistics.stdev(b)},
        "difference": difference,
        "ci95": [difference - half, difference + half],
        "p_value": p_value,
        "test": "Welch's t-test (two-sided, unequal variances)",
        "differ_beyond_noise": p_value < 0.05,
    }


def comparison_lines(result: dict) -> list[str]:
    a, b, (low, high) = result["a"], result["b"], result["ci95"]
    verdict = "they differ beyond seed noise" if result["differ_beyond_noise"] else "no difference beyond seed noise"
    return [
        f"A: {a['group']}  {result['metric']} {a['mean']:.4%} ± {a['std']:.4%} (n={a['n']})",
        f"B: {b['group']}  {result['metric']} {b['mean']:.4%} ± {b['std']:.4%} (n={b['n']})",
        f"B - A: {result['difference']:+.4%}, 95% CI [{low:+.4%}, {high:+.4%}], p = {result['p_value']:.3g} "
        f"({result['test']}): {verdict}",
    ]
