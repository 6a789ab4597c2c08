"""Peak resident memory of the pass, reduce and fit jobs at n and 4n samples.

    python benchmarks/ridge_memory.py                    # paper dims / 4, n = 25,000 and 100,000
    python benchmarks/ridge_memory.py --n 5000 --scale 8

Each job runs in its own process exactly as its Snakemake rule calls it
(``embmap.steps``); its peak RSS is the child's ``VmHWM``
(``/proc/self/status``, counted from its own exec) read as it ends. Memory should not depend on the number of samples: target, the
same within 20% at n and 4n. The figures include the interpreter and imported
libraries (printed as ``baseline``: a process that imports the same modules
and does nothing).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, machine, paper_dims, synthetic_features, write_stores

CHILD = """
import json, logging, sys
sys.path.insert(0, {workflow!r})
from embmap import steps, stores  # noqa: F401
from embmap.fit import gram, ridge  # noqa: F401
import dask, zarr, scipy.linalg  # noqa: F401
logging.getLogger("embmap").setLevel(logging.WARNING)
job, kw = sys.argv[1], json.loads(sys.argv[2])
if job != "baseline":
    steps.set_threads(kw.pop("threads", 1))
    getattr(steps, job)(**kw)
# VmHWM: peak resident set of this process since its exec (not inherited from the parent)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print("VmHWM_KiB", hwm)
"""


def peak_rss_mb(job: str, kwargs: dict) -> float:
    """Run ``embmap.steps.<job>(**kwargs)`` in a fresh process; its peak RSS in MiB."""
    code = CHILD.format(workflow=str(ROOT / "workflow"))
    r = subprocess.run([sys.executable, "-c", code, job, json.dumps(kwargs)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{job} failed with exit code {r.returncode}:\n{r.stderr[-3000:]}")
    return int(r.stdout.split("VmHWM_KiB")[-1].split()[0]) / 1024


def measure(n: int, dims: dict, work: Path, shards: int, folds: int, alpha, precision: str, threads: int) -> dict:
    feats = synthetic_features(n, dims)
    stores = write_stores(work / "stores", feats)
    del feats
    partials = [str(work / f"shards/{j}.zarr") for j in range(shards)]
    out = {"baseline": peak_rss_mb("baseline", {})}
    out["pass"] = max(peak_rss_mb("cross_products_shard", {
        "stores": stores, "partial": p, "split": "train", "shard": j, "shards": shards, "folds": folds,
        "precision": precision, "threads": threads}) for j, p in enumerate(partials))
    out["reduce"] = peak_rss_mb("cross_products", {"partials": partials, "blocks": str(work / "blocks.zarr"),
                                                   "split": "train", "stores": stores})
    from embmap.fit import methods

    names = list(dims)
    out["fit"] = max(peak_rss_mb("fit_maps", {
        "blocks": str(work / "blocks.zarr"), "method": "ridge", "source": a, "targets": [b for b in names if b != a],
        "mapping": {**methods.options(), "alpha": alpha},
        "maps": str(work / "maps" / a), "experiment": "benchmark", "fit_split": "train", "threads": threads})
        for a in names)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=25_000, help="the smaller sample count (the larger is 4n)")
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--networks", type=int, default=10)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--cv", default="", help="alpha list, e.g. 0.1,1,10 (per-fold blocks and CV fits)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--precision", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    dims = paper_dims(args.scale, args.networks)
    alpha = [float(v) for v in args.cv.split(",")] if args.cv else 1.0
    folds = args.folds if args.cv else 1
    D = sum(dims.values())
    blocks_mb = (D * D + sum(d * d for d in dims.values())) / 2 * 8 / 2**20
    print(f"machine: {machine()}")
    print(f"shape: {len(dims)} networks, D = {D}, alpha {alpha}, {folds} fold(s), {args.shards} shard(s), "
          f"{args.precision}; all upper blocks in float64 = {blocks_mb:.0f} MiB")
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    rows = {}
    for n in (args.n, 4 * args.n):
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            rows[n] = measure(n, dims, Path(tmp), args.shards, folds, alpha, args.precision, args.threads)
    print(f"{'peak RSS, MiB':<16}" + "".join(f"{f'n = {n:,}':>14}" for n in rows) + f"{'ratio':>8}")
    for job in ("baseline", "pass", "reduce", "fit"):
        a, b = (rows[n][job] for n in rows)
        print(f"{job:<16}{a:>14.0f}{b:>14.0f}{b / a:>8.2f}")
    worst = max(rows[4 * args.n][j] / rows[args.n][j] for j in ("pass", "reduce", "fit"))
    print(f"largest 4n/n ratio {worst:.2f} (target <= 1.20)")


if __name__ == "__main__":
    main()
