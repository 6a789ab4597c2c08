"""The workflow's steps: for each rule, what it reads, what it is given and what it does, side by side.

One module per rule file (``workflow/rules/NAME.smk``): :mod:`.data`,
:mod:`.networks`, :mod:`.fit`, :mod:`.evaluate`, :mod:`.report`. Each rule's
step is a function of plain paths and values, registered under the rule's
name with :func:`step`, together with

- ``inputs(plan, wc)``: the rule's inputs beyond its patterns (the rule's
  ``unpack(P.inputs(RULE))``), and
- ``job(plan, wc)``: every argument of the step that is not a path (the
  rule's ``params: job=P.job(RULE)``): which config keys the rule consumes;

:class:`embmap.plan.Plan` answers both from :data:`INPUTS` and :data:`JOBS`
and holds only the config's resolution and the paths.

Every rule runs ``workflow/scripts/step.py``, which calls :func:`run`: it
finds the rule's step in :data:`STEPS` and calls it with the arguments its
signature names, looked up in this order: the rule's ``params.job``, its named
outputs, its named inputs, its wildcards, and ``threads``. So every step can
also be run (and tested) without Snakemake, with the same arguments.

Standard library only at import time (the Snakefile imports the plan, which
imports this): steps import what they compute with inside their functions.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("embmap")
STEPS: dict = {}  # rule -> its step
INPUTS: dict = {}  # rule -> inputs(plan, wc): {name: path or list of paths}
JOBS: dict = {}  # rule -> job(plan, wc): {argument: value}
TRAIN_THREADS = 1  # see networks.train_network


def step(*rules, inputs=None, job=None):
    """Register a function as the step of ``rules`` (default: the rule of its own name), with the rule's
    ``inputs(plan, wc)`` and ``job(plan, wc)`` (default: none beyond its patterns; no arguments)."""

    def register(fn):
        for rule in rules or (fn.__name__,):
            STEPS[rule] = fn
            if inputs is not None:
                INPUTS[rule] = inputs
            JOBS[rule] = job or _no_job
        return fn

    return register


def _no_job(plan, wc) -> dict:
    return {}


def waits_for_check(plan, wc) -> dict:
    """Every job that reads stores waits for their check (rule check_stores)."""
    return {"checked": plan.path("stores_checked", wc.exp)}


FILE_OUTPUTS = (".csv", ".json", ".txt", ".png", ".svg")  # written whole by a step; stores are atomic themselves


def run(smk) -> None:
    """Run the step of Snakemake job ``smk`` (the ``snakemake`` object of a script) with its log.

    Output files (tables, figures, metadata) are written under temporary
    names beside their paths and renamed into place only when the step has
    succeeded, so a job killed mid-write never leaves a truncated file that
    looks finished (to a later run from another working directory, which
    cannot see Snakemake's incomplete markers of this one).
    """
    fn = STEPS[smk.rule]
    outputs = dict(smk.output.items())
    staged = {name: _staging(path) for name, path in outputs.items()
              if isinstance(path, str) and path.endswith(FILE_OUTPUTS)}
    pools = [dict(smk.params.items()).get("job", {}), {**outputs, **staged}, dict(smk.input.items()),
             dict(smk.wildcards.items()), {"threads": smk.threads}]
    kwargs = {}
    for name, p in inspect.signature(fn).parameters.items():
        for pool in pools:
            if name in pool:
                kwargs[name] = pool[name]
                break
        else:
            if p.default is inspect.Parameter.empty:
                raise TypeError(f"rule {smk.rule}: its step {fn.__name__} needs {name!r}, which the rule does not give")
    # embmap never uses tf.keras (TF Hub models load through tf_keras, Keras Applications through
    # keras): asked for the legacy one, TensorFlow's import skips loading Keras 3 and scikit-learn
    # with it, 3 of the 9 s every TensorFlow job of the demo spent importing it (benchmarks/demo.py)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    with logged(smk.log[0] if smk.log else None, renamed={tmp: outputs[k] for k, tmp in staged.items()}):
        set_threads(smk.threads)
        try:
            fn(**kwargs)
        except BaseException:
            for tmp in staged.values():
                Path(tmp).unlink(missing_ok=True)
            raise
        for name, tmp in staged.items():
            if Path(tmp).exists():
                os.replace(tmp, outputs[name])


def _staging(path: str) -> str:
    """Where output file ``path`` is written until its step succeeds: ``.NAME.partial.EXT`` beside it."""
    p = Path(path)
    return str(p.with_name(f".{p.stem}.partial{p.suffix}"))


def explained(e: BaseException) -> bool:
    """An error of embmap's own (StoreError, ConfigError, DatasetError, ...): its message names the file, key or
    network at fault and says what to do; any other exception is a bug and keeps its traceback."""
    return isinstance(e, ValueError) and type(e).__module__.split(".")[0] == "embmap"


class _Renamed(logging.Filter):
    """Log records name an output by its final path, not the temporary one its step writes (gone afterwards)."""

    def __init__(self, names: dict):
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        if self.names:
            msg = record.getMessage()
            for tmp, final in self.names.items():
                msg = msg.replace(tmp, final)
            record.msg, record.args = msg, ()
        return True


@contextmanager
def logged(path: str | None, renamed: dict | None = None):
    """Send this job's log records, warnings and any traceback to ``path`` and the terminal; everything
    else the process writes to its standard error (TensorFlow's and absl's start-up chatter from C++,
    progress bars) to ``path`` only.

    An error of embmap's own (:func:`explained`) is logged as its one-line
    message and the job exits with status 1. A crash below Python (a
    segmentation fault's message) is therefore in the job's log, which
    Snakemake names when the job fails.
    """
    root = logging.getLogger()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handlers, restore = [], None
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("")
        sys.stderr.flush()
        restore = os.dup(2)  # the terminal, for the job's own records
        terminal = os.fdopen(os.dup(restore), "w", buffering=1)
        with open(path, "a") as chatter:  # appended to by this process's C code and by the log records
            os.dup2(chatter.fileno(), 2)
        handlers = [logging.StreamHandler(terminal), logging.FileHandler(path, mode="a")]
    else:
        handlers = [logging.StreamHandler(sys.stderr)]
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(_Renamed(renamed or {}))
        root.addHandler(h)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield log
    except Exception as e:
        if explained(e):  # bad input, said in one line naming what is wrong: a traceback would bury it
            log.error("%s", e)
            raise SystemExit(1) from None
        log.error("failed:\n%s", traceback.format_exc())
        raise
    finally:
        for h in handlers:
            root.removeHandler(h)
            h.close()
        if restore is not None:
            sys.stderr.flush()
            os.dup2(restore, 2)
            os.close(restore)


def set_threads(n: int) -> None:
    """Limit BLAS to the job's ``threads``."""
    n = max(1, int(n))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass


def tf_threads(n: int, concurrent: int | None = None) -> int:
    """Run each of TensorFlow's CPU kernels on ``n`` threads and up to ``concurrent`` (default ``min(2, n)``) ops
    at once; returns the kernels' thread count in effect.

    Its CPU kernels split sums by their thread count, so results are
    bit-identical for the same ``n`` and differ by float32 rounding between
    counts (the ops run at once do not change them). Extraction therefore runs
    every kernel on a fixed ``n`` (``store.kernel_threads``, whatever the job's
    cores) and the job's ``threads // n`` batches side by side
    (:func:`embmap.extract.extract`'s ``workers``): its stores do not depend on
    the job's cores. Stores record ``n`` (attribute ``tf_threads``).
    """
    import tensorflow as tf

    n = max(1, int(n))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, int(concurrent or min(2, n))))
    except RuntimeError:  # already initialised in this process
        pass
    return tf.config.threading.get_intra_op_parallelism_threads() or n


# the steps of every rule file, registered as they are imported (and reachable as steps.NAME)
from .data import *  # noqa: E402,F401,F403
from .networks import *  # noqa: E402,F401,F403
from .fit import *  # noqa: E402,F401,F403
from .evaluate import *  # noqa: E402,F401,F403
from .report import *  # noqa: E402,F401,F403
