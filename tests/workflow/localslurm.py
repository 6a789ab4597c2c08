"""A real single-node SLURM cluster on localhost, for tests: munged, slurmctld and slurmd.

Everything lives in one private folder (configuration, munge key and socket, state, logs, ports
chosen free); the machine's /etc/munge is never read. Client commands find the cluster through
``SLURM_CONF`` (see :attr:`LocalSlurm.env`), except inside jobs: Snakemake's job step drops every
``SLURM_*`` variable before it calls ``srun``, which then reads the default
``/etc/slurm/slurm.conf``, as on a real cluster. So while the cluster runs, that path is a
symbolic link to the private configuration, removed again by :meth:`LocalSlurm.stop`. A lock
file lets one such cluster run on a machine at a time (a second waits), and a
``/etc/slurm/slurm.conf`` that is not such a link is never replaced.

Needs root and Debian's ``slurmctld``, ``slurmd`` and ``munge`` packages (``.ci/run`` installs
them). Accounting is off (``accounting_storage/none``): job states come from ``squeue`` and
``scontrol``, which keep finished jobs for ``MinJobAge`` seconds.

The node advertises one GPU backed by ``/dev/null``: SLURM schedules ``--gpus=1`` and
``--cpus-per-gpu`` requests on it and sets ``CUDA_VISIBLE_DEVICES``; TensorFlow finds no device
there and runs on the CPU.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
LOCK = Path("/tmp/embmap-localslurm.lock")
PREFIX = "embmap-slurm-"
INSTALL = "apt-get install -y slurmctld slurmd munge   (as root; .ci/run does this)"


class SlurmUnavailable(RuntimeError):
    """The cluster cannot start here; the message says why and what to do."""


def which(name: str) -> str | None:
    """Full path of a SLURM or munge program; daemons live in /usr/sbin, which PATH may lack."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_hardware() -> dict:
    """CPUs, sockets, cores and memory of this machine as ``slurmd -C`` reports them."""
    out = subprocess.run([which("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    return {k: int(fields[k]) for k in keys}


class LocalSlurm:
    """Start with :meth:`start` (or ``with LocalSlurm() as c:``), stop with :meth:`stop`.

    ``memory_fraction`` of the machine's memory is offered to jobs, so SLURM never marks the node
    invalid when free memory drifts.
    """

    def __init__(self, gpus: int = 1, memory_fraction: float = 0.9, lock_timeout: float = 1200):
        self.gpus = gpus
        self.memory_fraction = memory_fraction
        self.lock_timeout = lock_timeout
        self.root: Path | None = None
        self._lock = None
        self.node = socket.gethostname().split(".")[0]
        self.hardware: dict = {}

    # -- paths and environment ------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict:
        """The calling environment plus ``SLURM_CONF`` pointing at this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    @property
    def cpus(self) -> int:
        return self.hardware["CPUs"]

    @property
    def memory_mb(self) -> int:
        """Memory (MB) the node offers to jobs."""
        return self.hardware["RealMemory"]

    def log(self, daemon: str = "slurmctld") -> str:
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else f"({path} not written)"

    def run(self, *cmd: str, check: bool = True) -> str:
        """Run a SLURM client command (``squeue``, ``scontrol``...) against this cluster."""
        r = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
        return r.stdout

    def jobs(self) -> dict[str, dict]:
        """Every job the controller still knows (finished ones for MinJobAge seconds), by id."""
        out = {}
        for line in self.run("scontrol", "show", "job", "-o").splitlines():
            if line.startswith("JobId="):
                f = dict(re.findall(r"(\w+)=(\S*)", line))
                out[f["JobId"]] = f
        return out

    # -- life cycle ---------------------------------------------------------------------
    def _check_prerequisites(self) -> None:
        missing = [d for d in DAEMONS + ("sbatch", "squeue", "srun") if which(d) is None]
        if missing:
            raise SlurmUnavailable(f"SLURM cannot start: {', '.join(missing)} not installed. Run: {INSTALL}")
        if os.geteuid() != 0:
            raise SlurmUnavailable("SLURM cannot start: the test cluster runs its daemons as root and munge")
        try:
            pwd.getpwnam("munge")
        except KeyError:
            raise SlurmUnavailable(f"SLURM cannot start: no 'munge' user. Run: {INSTALL}") from None

    def _write_config(self) -> None:
        r = self.root
        hw = dict(self.hardware)
        hw["RealMemory"] = int(hw["RealMemory"] * self.memory_fraction)
        self.hardware = hw
        node = " ".join(f"{k}={v}" for k, v in hw.items())
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        self.conf.write_text(
            f"""# written by tests/workflow/localslurm.py
ClusterName=embmaptest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r}/munge/munge.socket
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=900
GresTypes=gpu
NodeName={self.node} NodeAddr=127.0.0.1 {node}{gres} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
        )
        if self.gpus:
            devices = ",".join(["/dev/null", "/dev/zero", "/dev/full", "/dev/random"][: self.gpus])
            (r / "gres.conf").write_text(f"NodeName={self.node} Name=gpu File={devices}\n")

    def _start_munge(self) -> None:
        m = self.root / "munge"
        m.mkdir(mode=0o755)
        key = m / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for p in (m, key):
            shutil.chown(p, "munge", "munge")
        subprocess.run(
            [which("munged"), f"--key-file={key}", f"--socket={m}/munge.socket", f"--pid-file={m}/munged.pid",
             f"--log-file={self.root}/log/munged.log", f"--seed-file={m}/munged.seed"],
            user="munge", group="munge", extra_groups=[], check=True, capture_output=True, text=True,
        )

    def _take_machine(self) -> None:
        """Wait for the machine-wide lock, then point /etc/slurm/slurm.conf at this cluster."""
        self._lock = open(LOCK, "w")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SlurmUnavailable(f"another test cluster held {LOCK} for {self.lock_timeout:.0f} s")
                time.sleep(1)
        if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
            if not (SYSTEM_CONF.is_symlink() and os.readlink(SYSTEM_CONF).startswith(f"{tempfile.gettempdir()}/{PREFIX}")):
                raise SlurmUnavailable(f"SLURM cannot start: {SYSTEM_CONF} exists (a real SLURM setup?); "
                                       "the test cluster does not replace it")
            SYSTEM_CONF.unlink()  # left by a test cluster that was killed
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(self.conf)

    def _release_machine(self) -> None:
        if SYSTEM_CONF.is_symlink() and os.readlink(SYSTEM_CONF) == str(self.conf):
            SYSTEM_CONF.unlink()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def start(self, timeout: float = 60) -> "LocalSlurm":
        self._check_prerequisites()
        self.hardware = node_hardware()
        # not under pytest's tmp_path: munged must reach its socket through folders it can traverse
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        self.root.chmod(0o755)
        for d in ("state", "spool", "log"):
            (self.root / d).mkdir()
        shutil.chown(self.root / "log", "munge")  # munged writes its log here too
        self._write_config()
        try:
            self._take_machine()
            self._start_munge()
            for cmd in ([which("slurmctld"), "-f", str(self.conf)],
                        [which("slurmd"), "-f", str(self.conf), "-N", self.node]):
                subprocess.run(cmd, env=self.env, check=True, capture_output=True, text=True)
            deadline = time.monotonic() + timeout
            state = ""
            while time.monotonic() < deadline:
                state = self.run("sinfo", "-h", "-n", self.node, "-o", "%T", check=False).strip()
                if state == "idle":
                    return self
                time.sleep(0.5)
            raise SlurmUnavailable(f"SLURM cannot start: node {self.node} is {state or 'not answering'} "
                                   f"after {timeout:.0f} s")
        except subprocess.CalledProcessError as e:
            err = f"SLURM cannot start: {' '.join(e.cmd)} failed: {e.stderr}"
        except SlurmUnavailable as e:
            err = str(e)
        logs = "\n".join(f"--- {d}.log ---\n{self.log(d)[-2000:]}" for d in DAEMONS)
        self.stop()
        raise SlurmUnavailable(f"{err}\n{logs}")

    def _pid(self, daemon: str) -> int | None:
        f = self.root / ("munge/munged.pid" if daemon == "munged" else f"{daemon}.pid")
        try:
            return int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Cancel every job, stop the three daemons (by their pid files) and delete the folder."""
        if self.root is None:
            return
        if self._pid("slurmctld"):
            self.run("scancel", "--user", "root", check=False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.run("squeue", "-h", "-t", "R,CG", check=False).strip():
                time.sleep(0.5)
        for daemon in ("slurmd", "slurmctld", "munged"):
            pid = self._pid(daemon)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.2)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._release_machine()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> "LocalSlurm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
