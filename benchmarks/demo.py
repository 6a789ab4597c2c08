"""Where the default demo's wall time goes: every job's time by rule, and what of it is start-up.

    python benchmarks/demo.py                 # runs `snakemake --cores all` on config.yaml in a copy
    python benchmarks/demo.py --cores 2 --keep DIR

The demo runs in a temporary copy of the repository (nothing of this checkout's
results/ is touched). Printed: the wall time; per rule the number of jobs and
the sum of their run times (Snakemake's benchmark files); and, measured in
fresh processes, what every job pays before its work starts: a Python start
with the step runner's imports, and TensorFlow's import for the rules that
need it. ``job-seconds / cores`` is the wall time if the cores were never idle.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import ROOT, machine

TF_RULES = ("train_network", "extract", "detect_faces")


def start_up(code: str, repeat: int = 3) -> float:
    """Seconds of a fresh ``python -c code``, best of ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                            "TF_USE_LEGACY_KERAS": "1"})  # as embmap.steps.run sets it for every job
        best = min(best, time.perf_counter() - start)
    return best


def job_times(results: Path) -> dict[str, list[float]]:
    """Rule -> run times (s) of its jobs, from results/*/benchmarks/RULE[/...].tsv."""
    out = defaultdict(list)
    for f in sorted(results.glob("*/benchmarks/**/*.tsv")):
        rule = f.relative_to(results).parts[2].removesuffix(".tsv")
        with open(f) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        out[rule].append(float(row["s"]))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", default="all")
    ap.add_argument("--keep", default=None, help="run in this folder and keep it (default: a temporary one)")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    work = Path(args.keep or tempfile.mkdtemp(prefix="embmap-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, work / name)
    for name in ("workflow", "envs"):
        shutil.copytree(ROOT / name, work / name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(args.cores)], cwd=work, capture_output=True,
                       text=True)
    wall = time.perf_counter() - start
    if r.returncode:
        raise SystemExit(f"the demo failed:\n{r.stderr[-3000:]}")
    times = job_times(work / "results")
    cores = os.cpu_count() if args.cores == "all" else int(args.cores)
    py = start_up(f"import sys; sys.path.insert(0, {str(work / 'workflow')!r}); "
                  "import numpy, pandas, zarr; from embmap import steps, stores")
    tf = start_up("import tensorflow, tensorflow_hub") - start_up("pass")
    total = sum(sum(v) for v in times.values())
    print(f"wall time {wall:.1f} s; {sum(len(v) for v in times.values())} jobs, {total:.1f} job-seconds "
          f"(/ {cores} cores = {total / cores:.1f} s)")
    print(f"every job: Python start with the step's imports {py:.2f} s; TensorFlow's import adds {tf:.2f} s")
    print(f"{'rule':<26}{'jobs':>5}{'seconds':>9}{'start-up':>10}  longest")
    overhead = 0.0
    for rule, v in sorted(times.items(), key=lambda kv: -sum(kv[1])):
        fixed = len(v) * (py + (tf if rule in TF_RULES else 0.0))
        overhead += fixed
        print(f"{rule:<26}{len(v):>5}{sum(v):>9.1f}{fixed:>10.1f}  {max(v):.1f}")
    print(f"start-up in all: {overhead:.1f} of {total:.1f} job-seconds ({100 * overhead / total:.0f}%)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
