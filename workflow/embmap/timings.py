"""Where a run's time went: every job's benchmark file of an experiment folder, as one table.

Every rule writes Snakemake's benchmark of its job to ``results/EXP/benchmarks/RULE[/WILDCARDS].tsv``
(wall seconds ``s``, ``cpu_time``, ``max_rss`` in MB, ...). :func:`summary` reads them all:
``python -m embmap times results/EXP`` prints the jobs by wall time and the total per rule.
"""

from __future__ import annotations

from pathlib import Path

COLUMNS = ["rule", "job", "seconds", "cpu_seconds", "max_rss_mb"]


class TimingsError(ValueError):
    """No benchmark files where the experiment's should be."""


def summary(exp_dir) -> "tuple":
    """(jobs, rules): one row per job (:data:`COLUMNS`, slowest first; ``job`` the wildcards' part of its
    path, e.g. ``ridge/mlp``), and per rule its jobs, total and largest seconds and largest ``max_rss``."""
    import pandas as pd

    root = Path(exp_dir) / "benchmarks"
    files = sorted(root.rglob("*.tsv")) if root.is_dir() else []
    if not files:
        raise TimingsError(f"{root}: no benchmark files (RULE[/WILDCARDS].tsv); is {exp_dir} an experiment folder "
                           "of a finished run?")
    rows = []
    for f in files:
        t = pd.read_csv(f, sep="\t")
        if t.empty:
            continue
        rel = f.relative_to(root).with_suffix("")
        last = t.iloc[-1]  # a repeated benchmark keeps one line per repeat: the last is the latest
        rows.append({"rule": rel.parts[0], "job": "/".join(rel.parts[1:]), "seconds": float(last["s"]),
                     "cpu_seconds": float(last.get("cpu_time", float("nan"))),
                     "max_rss_mb": float(last.get("max_rss", float("nan")))})
    jobs = pd.DataFrame(rows, columns=COLUMNS).sort_values("seconds", ascending=False, kind="stable")
    rules = (jobs.groupby("rule").agg(jobs=("job", "size"), seconds=("seconds", "sum"),
                                      slowest=("seconds", "max"), max_rss_mb=("max_rss_mb", "max"))
             .sort_values("seconds", ascending=False, kind="stable"))
    return jobs.reset_index(drop=True), rules


def report(exp_dir, top: int = 15) -> str:
    """The text ``python -m embmap times`` prints: the total, each rule's share, the slowest jobs."""
    jobs, rules = summary(exp_dir)
    total = float(jobs.seconds.sum())
    lines = [f"{exp_dir}: {len(jobs)} jobs, {total:.1f} s of job wall time in all (jobs run side by side, so the "
             "run itself took less)", "", "by rule:"]
    for rule, r in rules.iterrows():
        share = 100.0 * r.seconds / total if total > 0 else float("nan")
        lines.append(f"  {rule:<26} {int(r.jobs):>4} job(s) {r.seconds:9.1f} s  {share:5.1f}%  slowest "
                     f"{r.slowest:7.1f} s  max RSS {r.max_rss_mb:8.0f} MB")
    lines += ["", f"slowest {min(top, len(jobs))} jobs:"]
    for r in jobs.head(top).itertuples():
        lines.append(f"  {r.seconds:9.1f} s  {r.rule}{'/' + r.job if r.job else ''}")
    return "\n".join(lines)
