"""``open_set``: 10-fold pair verification through mapped embeddings (the paper's Table 6) and identification.

Networks are extracted on the one split ``pairs`` (the images a pairs file in LFW's
format names), L2-normalised; each fold's map is fitted on the matched pairs of
the other folds (rules ``evaluate_open_set`` and ``evaluate_identification``).
"""

from __future__ import annotations

from . import Task

PAIRS_SPLIT = "pairs"  # the one split of an open_set experiment: the images its pairs file names


def check(plan, exp, where: str, ctx) -> None:
    from pathlib import Path

    from ..config import ConfigError

    if exp.kind.pairs == "written":
        exp.pairs_file = plan.path("pairs", exp.name)
        return
    if "pairs" not in exp.spec["dataset"]:
        raise ConfigError(f"{where}.dataset.pairs: open_set needs a pairs file in LFW format")
    exp.pairs_file = str(plan.path_of(exp.spec["dataset"]["pairs"]))
    if ctx.check_paths and not Path(exp.pairs_file).is_file():
        raise ConfigError(f"{where}.dataset.pairs: no pairs file at {exp.pairs_file}")


TASK = Task(
    name="open_set",
    summary="10-fold pair verification through mapped embeddings (paper Table 6) and identification",
    tables={"open_set": "tables/open_set.csv", "open_set_folds": "tables/open_set_folds.csv",
            "open_set_matrix": "tables/open_set_matrix.csv", "open_set_meta": "tables/open_set.json",
            "identification": "tables/identification.csv", "identification_matrix": "tables/identification_matrix.csv"},
    figures={"open_set_heatmap": "figures/open_set_heatmap.{ext}",
             "identification_heatmap": "figures/identification_heatmap.{ext}"},
    heatmaps={"open_set_heatmap": ("open_set_matrix", "verification through the map", "target network (features)"),
              "identification_heatmap": ("identification_matrix", "rank-1 identification",
                                         "target network (gallery)")},
    splits=lambda exp: [PAIRS_SPLIT],
    pairs=True,
    normalise=True,
    check=check,
)
