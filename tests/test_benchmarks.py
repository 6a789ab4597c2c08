"""The benchmark scripts run as documented (a tiny shape: figures are not checked, only that they run)."""

import subprocess
import sys

from helpers import ROOT


def _run(script, *args):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True)
    assert r.returncode == 0, f"{script} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def test_ridge_benchmark_creates_a_missing_workdir(tmp_path):
    work = tmp_path / "not" / "yet"
    out = _run("ridge.py", "--n", "3000", "--scale", "64", "--networks", "3", "--skip-sklearn", "--workdir",
               str(work))
    assert work.is_dir() and "(a) workflow jobs from the stores" in out


def test_ridge_memory_benchmark_creates_a_missing_workdir(tmp_path):
    work = tmp_path / "deeper" / "still"
    out = _run("ridge_memory.py", "--n", "1500", "--scale", "64", "--networks", "3", "--workdir", str(work))
    assert work.is_dir() and "largest 4n/n ratio" in out


def test_sample_efficiency_benchmark_runs():
    out = _run("sample_efficiency.py", "--dim", "40", "--networks", "3", "--n", "120", "--n-eval", "40",
               "--sizes", "16,32")
    assert "(b)/(s) =" in out and "largest difference between the tables" in out


def test_fits_benchmark_runs():
    out = _run("fits.py", "--scale", "64", "--networks", "3", "--repeat", "1", "--cv")
    assert "new/old =" in out and "new maps the same bits on 1 and 2 threads: True" in out
