"""Tasks: what an experiment measures (``task:``), one module each, found through :data:`TASKS`.

Each module declares ``TASK = Task(...)``: the tables and figures it writes (keys
of :data:`embmap.plan.OUTPUTS`; its rules in ``workflow/rules/evaluate.smk`` and
``report.smk`` produce them), the splits its networks are extracted on, what it
asks of networks and stores, and its own config check. The plan asks the task,
never the task's name.

- :mod:`.closed_set`: the target's classifier reads mapped features (the paper's
  Table 2); maps from the one pass over a fit split, measured on an evaluation split;
- :mod:`.open_set`: face verification through the map over a pairs file's folds
  (Table 6) and identification across networks.

To add a task: write ``NAME.py`` here with a ``TASK``, list it in ``_tasks``
below, add its name to ``task`` in the schema (and its keys), add its rule(s)
(``workflow/rules/evaluate.smk``) with a step each (:mod:`embmap.steps.evaluate`)
and captions for the report, and test it.

Standard library only (the Snakefile imports the plan, which imports this).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Task:
    """A value of ``task:``.

    Attributes
    ----------
    name : str
    summary : str
    tables, figures : dict
        ``{output name: path relative to the experiment's folder}`` of what the task writes, in the
        order of the run's targets: they join :data:`embmap.plan.OUTPUTS` (figures carry ``{ext}``,
        written in every format of :data:`embmap.plan.FIGURE_FORMATS`).
    heatmaps : dict
        ``{figure: (matrix table, title, x label)}`` of the task's heatmaps (rule ``plot_heatmap``).
    splits : callable
        ``splits(experiment)`` -> the splits its networks are extracted on.
    classifier : bool
        The task reads the target network's classifier: every network needs one (on the evaluation split).
    fit_pass : bool
        Maps come from the one pass over the experiment's fit split (``fit_split`` / ``eval_split``),
        which is also what the similarity indices and sample-efficiency prefixes read.
    pairs : bool
        The task is measured on a pairs file (``dataset.pairs``, or the one its dataset kind writes).
    normalise : bool
        Embeddings are L2-normalised when extracted (cosine protocols).
    check : callable, optional
        ``check(plan, experiment, where, ctx)``: what the schema cannot check; may set experiment fields.
    like : str, optional
        A task this one is a variant of: it is served by every dataset kind that serves that one
        (:attr:`embmap.data.Kind.tasks` need not name it).
    analyses : dict
        ``{analysis: {output name: path}}``: optional tables and figures, written for the analyses the
        experiment's ``analyses`` lists (the schema's enum names them); the outputs join
        :data:`embmap.plan.OUTPUTS` like ``tables`` and ``figures`` (a path with ``{ext}`` is a figure).
    """

    name: str
    summary: str
    tables: dict
    figures: dict
    splits: Callable
    heatmaps: dict = field(default_factory=dict)
    classifier: bool = False
    fit_pass: bool = False
    pairs: bool = False
    normalise: bool = False
    check: Callable | None = None
    like: str | None = None
    analyses: dict = field(default_factory=dict)


def _tasks() -> dict[str, Task]:
    from . import closed_set, open_set

    return {module.TASK.name: module.TASK for module in (closed_set, open_set)}


TASKS: dict[str, Task] = _tasks()


def get(name: str) -> Task:
    """The task of a ``task:`` value (the schema has already refused any other)."""
    return TASKS[name]


__all__ = ["TASKS", "Task", "get"]
