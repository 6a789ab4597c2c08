"""One run at a time in an experiment's results folder, wherever the runs were started from.

Snakemake locks its working directory only: two runs started in different
folders with the same absolute ``results:`` would both write (and, when a job
fails, delete) the same outputs. The Snakefile therefore takes a
:class:`RunLock` on every experiment folder it writes when the run starts
(``onstart``) and releases it when the run ends, successfully or not
(``onsuccess``, ``onerror``; Snakemake reports Ctrl-C as an error, and an
``atexit`` hook releases it on any other exit of the process).

The lock is the file ``results/EXP/.embmap.lock``: created exclusively,
holding its owner (host, process id, boot id, start time, working
directory, command), and ``flock``-ed by the owner for as long as it runs.
The kernel drops a ``flock`` when its process dies, even by SIGKILL, so a
lock file that is still there but no longer held is *stale*:

- left by a process of this machine (same boot id): provably dead, the lock
  is taken over and a warning says whose it was and what to do about that
  run's unfinished jobs;
- left on this host before it restarted (same host name, other boot id):
  likewise;
- left by another machine: whether that run still goes cannot be seen from
  here (file systems differ in whether locks cross machines), so the run is
  refused with the owner's details and the file to delete once you know.

Standard library only (it runs inside Snakemake's own process).
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".embmap.lock"


class LockError(RuntimeError):
    """The run cannot lock a results folder; the message names it and says why."""


class LockBusy(LockError):
    """The results folder is in use by another run (or may be: the message says how to tell)."""


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _command() -> str:
    if not sys.argv or not sys.argv[0]:
        return "?"
    prog = Path(sys.argv[0])
    name = f"python -m {prog.parent.name}" if prog.name == "__main__.py" else prog.name
    return " ".join([name, shlex.join(sys.argv[1:])]).strip()


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot_id": _boot_id(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cwd": os.getcwd(), "command": _command()}


def _describe(owner: dict) -> str:
    if not owner:
        return "a run that is just starting (its lock file is still empty)"
    return (f"the run of process {owner.get('pid', '?')} on host {owner.get('host', '?')}, started "
            f"{owner.get('started', '?')} in {owner.get('cwd', '?')} (`{owner.get('command', '?')}`)")


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    try:
        owner = json.loads(b"".join(chunks).decode() or "{}")
    except ValueError:
        owner = {"pid": "?", "host": "?", "command": "unreadable lock file"}
    return owner if isinstance(owner, dict) else {}


def _write(fd: int, owner: dict) -> None:
    data = json.dumps(owner, indent=1).encode()
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
    os.fsync(fd)


class RunLock:
    """Locks on experiment folders, held by this process for one run.

    Parameters
    ----------
    dirs : list of paths
        The folders to lock (made if missing); relative paths are taken
        from the current directory when :meth:`acquire` runs.
    warn : callable
        Receives the explanation when a stale lock is taken over.
    """

    def __init__(self, dirs, warn=None):
        self.dirs = list(dirs)
        self.warn = warn or (lambda msg: print(f"embmap: {msg}", file=sys.stderr))
        self.held: dict[str, int] = {}  # lock file -> open descriptor (flock-ed where supported)
        self.me = _me()
        self.taken_over: list[dict] = []

    def acquire(self) -> "RunLock":
        """Lock every folder or none: raise :class:`LockBusy` naming the run that holds one."""
        atexit.register(self.release)
        try:
            for d in sorted(dict.fromkeys(os.path.abspath(d) for d in self.dirs)):
                self._acquire_one(Path(d) / LOCK_NAME)
        except BaseException:
            self.release()
            raise
        return self

    def _acquire_one(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LockError(f"results folder {path.parent}: cannot be made ({e.strerror}); choose a `results:` "
                            "folder you can write") from None
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                created = True
            except PermissionError as e:
                raise LockError(f"results folder {path.parent}: cannot be written ({e.strerror}); choose a "
                                "`results:` folder you can write") from None
            except FileExistsError:
                try:
                    fd = os.open(path, os.O_RDWR)
                except FileNotFoundError:  # released between the two calls: try again
                    continue
                created = False
            try:
                flocked = self._flock(fd)
            except BlockingIOError:
                owner = _read(fd)
                os.close(fd)
                raise LockBusy(self._busy(path, owner, held=True)) from None
            try:  # the file we hold must still be the one at `path` (an owner unlinks it on release)
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            if not created:
                owner = _read(fd)
                if owner:
                    stale = self._stale(owner, flocked)
                    if not stale:
                        os.close(fd)
                        raise LockBusy(self._busy(path, owner, held=False))
                    self.taken_over.append(owner)
                    self.warn(f"{path.parent}: took over the stale lock of {_describe(owner)}: {stale}. If that run "
                              "was cut off mid-job, its unfinished outputs are rerun here (Snakemake marks them "
                              "incomplete in its own folder: there, `snakemake --unlock` clears its lock and "
                              "`--rerun-incomplete` reruns them). Jobs it had submitted to a cluster outlive it: "
                              "if it used one, cancel them (squeue --me, scancel) before this run reaches them")
            _write(fd, self.me)
            self.held[str(path)] = fd
            return

    @staticmethod
    def _flock(fd: int) -> bool:
        """Take the flock; False where the file system has none. Raises BlockingIOError if another holds it."""
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise BlockingIOError(e.errno, e.strerror) from None
            return False  # ENOLCK, EOPNOTSUPP, ENOSYS: a file system without flock

    def _stale(self, owner: dict, flocked: bool) -> str | None:
        """Why the owner's run is certainly over, or None if that cannot be told from here."""
        me = self.me
        if owner.get("boot_id") and owner.get("boot_id") == me["boot_id"]:
            if flocked:
                return "it ended without releasing its lock (killed with SIGKILL, out of memory, or crashed)"
            pid = owner.get("pid")
            if isinstance(pid, int) and not _alive(pid):
                return f"process {pid} no longer exists (killed, or crashed)"
            return None
        if owner.get("host") == me["host"] and owner.get("boot_id") and me["boot_id"]:
            return "this machine has restarted since"
        return None

    def _busy(self, path: Path, owner: dict, held: bool) -> str:
        """Why the run stops: ``held`` = the owner holds the flock (it certainly runs)."""
        folder = path.parent
        head = (f"results folder {folder} is in use by {_describe(owner)}. Two runs writing one results folder can "
                "delete each other's results, so this run stops before any job: ")
        if held or (owner.get("boot_id") and owner.get("boot_id") == self.me["boot_id"]):
            return head + ("wait for that run to end, or give this one another `results:` (for example "
                           "`--config results=OTHER`).")
        return head + ("that run is on another machine, so whether it still runs cannot be seen from here. If it "
                       f"does, wait for it or choose another `results:`; if it does not (it was killed, or its "
                       f"machine was lost), delete {path} and start again.")

    def release(self) -> None:
        """Remove this run's lock files and drop their flocks (idempotent)."""
        for path, fd in list(self.held.items()):
            try:
                if _read(fd).get("pid") == self.me["pid"] and os.path.exists(path) and \
                        os.stat(path).st_ino == os.fstat(fd).st_ino:
                    os.unlink(path)  # before the flock is dropped: nobody sees an unheld lock of ours
            except OSError:
                pass
            finally:
                os.close(fd)
                del self.held[path]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
