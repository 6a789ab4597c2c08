"""The run lock on experiment folders: one run at a time, a stale lock after SIGKILL detected and explained."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
import yaml

from embmap import runlock
from embmap.runlock import LOCK_NAME, LockBusy, RunLock
from helpers import ROOT, byo_config, snakemake, synthetic_stores


def test_a_second_lock_on_a_folder_is_refused_naming_the_holder_and_released_cleanly(tmp_path):
    first = RunLock([tmp_path / "res" / "exp"]).acquire()
    lock_file = tmp_path / "res" / "exp" / LOCK_NAME
    owner = json.loads(lock_file.read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname() and owner["cwd"] == os.getcwd()
    with pytest.raises(LockBusy, match=rf"results folder {tmp_path}/res/exp is in use by the run of process "
                                       rf"{os.getpid()} on host .*wait for that run to end"):
        RunLock([tmp_path / "res" / "exp"]).acquire()
    first.release()
    assert not lock_file.exists()
    second = RunLock([tmp_path / "res" / "exp"]).acquire()
    assert second.taken_over == [], "a released lock is not stale"
    second.release()
    second.release()  # idempotent


def test_a_run_locks_all_its_folders_or_none(tmp_path):
    held = RunLock([tmp_path / "b"]).acquire()
    with pytest.raises(LockBusy):
        RunLock([tmp_path / "a", tmp_path / "b", tmp_path / "c"]).acquire()
    assert not (tmp_path / "a" / LOCK_NAME).exists() and not (tmp_path / "c" / LOCK_NAME).exists()
    held.release()


CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {workflow!r})
    from embmap.runlock import RunLock
    RunLock([{folder!r}]).acquire()
    print("locked", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_lock_left_by_a_killed_run_is_detected_explained_and_taken_over(tmp_path):
    folder = tmp_path / "res" / "exp"
    r = subprocess.run([sys.executable, "-c", CHILD.format(workflow=str(ROOT / "workflow"), folder=str(folder))],
                       capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL and "locked" in r.stdout
    dead = json.loads((folder / LOCK_NAME).read_text())
    said = []
    lock = RunLock([folder], warn=said.append).acquire()
    assert lock.taken_over == [dead]
    assert len(said) == 1 and f"took over the stale lock of the run of process {dead['pid']}" in said[0]
    assert "ended without releasing its lock (killed with SIGKILL" in said[0] and "snakemake --unlock" in said[0]
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def _plant(folder, **owner):
    folder.mkdir(parents=True, exist_ok=True)
    base = {"host": "gpu-node-7", "pid": 4242, "boot_id": "another-boot", "started": "2026-01-01 00:00:00 +0000",
            "cwd": "/home/me/run1", "command": "snakemake --cores 8"}
    (folder / LOCK_NAME).write_text(json.dumps({**base, **owner}))


def test_a_lock_of_another_machine_is_not_guessed_stale_but_explained(tmp_path):
    _plant(tmp_path / "exp")
    with pytest.raises(LockBusy, match=r"in use by the run of process 4242 on host gpu-node-7, started 2026-01-01 "
                                       r"00:00:00 \+0000 in /home/me/run1 \(`snakemake --cores 8`\).*on another "
                                       rf"machine.*delete {tmp_path}/exp/{LOCK_NAME} and start again"):
        RunLock([tmp_path / "exp"]).acquire()
    assert json.loads((tmp_path / "exp" / LOCK_NAME).read_text())["pid"] == 4242, "another's lock is left alone"


def test_a_lock_from_before_this_machine_restarted_is_stale(tmp_path):
    if runlock._boot_id() is None:
        pytest.skip("no boot id on this system")  # pragma: no cover
    _plant(tmp_path / "exp", host=socket.gethostname())
    said = []
    lock = RunLock([tmp_path / "exp"], warn=said.append).acquire()
    assert "this machine has restarted since" in said[0]
    lock.release()


def test_without_flock_a_dead_process_of_this_machine_is_stale_and_a_live_one_is_not(tmp_path, monkeypatch):
    monkeypatch.setattr(RunLock, "_flock", staticmethod(lambda fd: False))  # a file system without flock
    boot = runlock._boot_id()
    _plant(tmp_path / "live", host=socket.gethostname(), boot_id=boot, pid=os.getppid())
    with pytest.raises(LockBusy, match=rf"process {os.getppid()}.*wait for that run to end"):
        RunLock([tmp_path / "live"]).acquire()
    with open("/proc/sys/kernel/pid_max") as f:
        gone = int(f.read()) + 1  # no process can have it
    _plant(tmp_path / "dead", host=socket.gethostname(), boot_id=boot, pid=gone)
    said = []
    RunLock([tmp_path / "dead"], warn=said.append).acquire().release()
    assert f"process {gone} no longer exists" in said[0]


def test_release_leaves_a_lock_that_is_not_ours(tmp_path):
    lock = RunLock([tmp_path / "exp"]).acquire()
    (tmp_path / "exp" / LOCK_NAME).unlink()  # someone deleted our lock and another run took the folder
    _plant(tmp_path / "exp")
    lock.release()
    assert json.loads((tmp_path / "exp" / LOCK_NAME).read_text())["pid"] == 4242


# -- two snakemake runs, from different working folders, one absolute results folder ------------------
def _blocking_store(tmp_path):
    """Bring-your-own stores whose first chunk of labels is a FIFO: the first job to read it (check_stores)
    waits until the test writes the chunk's bytes, so a run holds its lock for as long as the test wants."""
    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b"), dims=(5, 4), n_train=120, n_test=60)
    chunk = tmp_path / "byo" / "a" / "train.zarr" / "labels" / "c" / "0"
    real = chunk.read_bytes()
    chunk.unlink()
    os.mkfifo(chunk)
    cfg = byo_config(dirs)
    cfg["results"] = str(tmp_path / "shared" / "results")
    return cfg, chunk, real


def _start(workdir, cfg):
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2"]
    out = open(workdir / "run.log", "w")
    # SIGINT as a terminal leaves it: a shell that starts pytest in the background (`cmd &`) has it ignored,
    # and an ignored signal stays ignored through exec, in Snakemake and its jobs
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _reader_opened(fifo, proc, limit=600):
    """The write end of ``fifo``, once a reader has opened it: run ``proc`` is then inside its first job."""
    end = time.monotonic() + limit
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            return fd
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        assert proc.poll() is None, f"the first run ended (code {proc.returncode}) before reading its stores"
        assert time.monotonic() < end, "the first run never reached its first job"
        time.sleep(0.05)


def _first_run_inside_its_first_job(tmp_path):
    """Start run one (folder ``one``) and return once its check_stores job waits on the FIFO, holding the lock."""
    cfg, fifo, real = _blocking_store(tmp_path)
    one = _start(tmp_path / "one", cfg)
    return cfg, fifo, real, tmp_path / "shared" / "results", one, _reader_opened(fifo, one)


def _files(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def _restore(fifo, real):
    """Put the real chunk back at its path, for later readers."""
    tmp = fifo.with_name("0.real")
    tmp.write_bytes(real)
    os.replace(tmp, fifo)


def _feed(fifo, fd, real):
    """Restore the chunk and give the waiting reader its bytes."""
    _restore(fifo, real)
    os.write(fd, real)
    os.close(fd)


@pytest.mark.workflow
def test_a_second_run_elsewhere_on_the_same_results_stops_before_any_job_and_deletes_nothing(tmp_path):
    cfg, fifo, real, results, one, fd = _first_run_inside_its_first_job(tmp_path)
    try:
        before = _files(results)
        assert (results / "byo" / LOCK_NAME).exists()
        (tmp_path / "two").mkdir()
        r = snakemake(tmp_path / "two", cfg, check=False)
        out = r.stdout + r.stderr
        assert r.returncode != 0
        assert (f"results folder {results}/byo is in use by the run of process {one.pid} on host "
                f"{socket.gethostname()}") in out and f"in {tmp_path / 'one'} (`python -m snakemake -s" in out, out[-3000:]
        assert "wait for that run to end, or give this one another `results:`" in out
        assert "LockBusy" in out and "Traceback" not in out
        assert _files(results) == before, "the refused run changed the results folder"
        assert not (tmp_path / "two" / "results").exists()
    finally:
        _feed(fifo, fd, real)
    assert one.wait(timeout=900) == 0, (tmp_path / "one" / "run.log").read_text()[-3000:]
    assert not (results / "byo" / LOCK_NAME).exists(), "a finished run releases its lock"
    t = pd.read_csv(results / "byo" / "tables" / "closed_set.csv")
    assert len(t) and t.accuracy.notna().all()
    # the folder is free again: the second run goes (nothing to do, every output is there)
    r = snakemake(tmp_path / "two", cfg)
    assert "took over" not in r.stderr and not (results / "byo" / LOCK_NAME).exists()


@pytest.mark.workflow
def test_after_kill_9_the_next_run_explains_the_stale_lock_takes_it_over_and_finishes(tmp_path):
    cfg, fifo, real, results, one, fd = _first_run_inside_its_first_job(tmp_path)
    os.killpg(one.pid, signal.SIGKILL)  # Snakemake and its job, as a pre-empted node or an OOM killer would
    one.wait()
    os.close(fd)
    _restore(fifo, real)
    stale = json.loads((results / "byo" / LOCK_NAME).read_text())
    assert stale["pid"] == one.pid
    (tmp_path / "two").mkdir()
    r = snakemake(tmp_path / "two", cfg)
    assert (f"took over the stale lock of the run of process {one.pid} on host {socket.gethostname()}"
            in r.stderr), r.stderr[-3000:]
    assert "ended without releasing its lock (killed with SIGKILL" in r.stderr
    assert not (results / "byo" / LOCK_NAME).exists()
    assert len(pd.read_csv(results / "byo" / "tables" / "closed_set.csv"))


@pytest.mark.workflow
def test_ctrl_c_releases_the_lock(tmp_path):
    cfg, fifo, real, results, one, fd = _first_run_inside_its_first_job(tmp_path)
    os.killpg(one.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends: to Snakemake and its job
    # the job's read of the chunk runs in a worker thread, which a signal does not interrupt: let it finish
    _feed(fifo, fd, real)
    assert one.wait(timeout=600) != 0
    assert "SIGINT" in (tmp_path / "one" / "run.log").read_text(), "the run was not interrupted by Ctrl-C"
    assert not (results / "byo" / LOCK_NAME).exists(), (tmp_path / "one" / "run.log").read_text()[-3000:]
    (tmp_path / "two").mkdir()
    r = snakemake(tmp_path / "two", cfg)
    assert "took over" not in r.stderr and len(pd.read_csv(results / "byo" / "tables" / "closed_set.csv"))


def test_a_results_folder_that_cannot_be_made_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(runlock.LockError, match=rf"results folder {tmp_path}/file/exp: cannot be made"):
        RunLock([tmp_path / "file" / "exp"]).acquire()
