"""``closed_set``: the target's classifier reads mapped features (the paper's Table 2).

Maps are fitted on the fit split from the one pass's blocks, without labels, and
measured on the evaluation split (rule ``evaluate_closed_set``, with the controls:
native, identity, analytic); Table 1 (``network_table``) beside it; similarity
indices and sample-efficiency prefixes read the same pass where the experiment
asks for them. The ``analyses`` (rules of their own, from the same maps and
evaluation stores: :mod:`embmap.evaluate.asymmetry`, ``.composition``,
``.classifier_view``, ``.shared_space``; from the tables: ``.index_predicts``
for ``index_predicts`` and ``n95``; :mod:`embmap.evaluate.layers` for ``layers``,
which also puts every layer of the stores into the pass) where the experiment lists them.
"""

from __future__ import annotations

from . import Task


def check(plan, exp, where: str, ctx) -> None:
    from ..config import ConfigError

    if exp.fit_split == exp.eval_split:
        raise ConfigError(f"{where}.eval_split: equals fit_split ({exp.fit_split!r}); maps must be measured "
                          "on images they were not fitted on")
    if "composition" in exp.spec["analyses"] and len(exp.spec["networks"]) < 3:
        raise ConfigError(f"{where}.analyses: composition compares A -> B -> C with A -> C and needs three networks "
                          f"or more; the experiment has {len(exp.spec['networks'])}")
    analyses = exp.spec["analyses"]
    if "layers" in analyses:
        layered = [k for k, n in exp.spec["networks"].items() if n.get("layers") or n["source"] == "zarr"]
        if not layered:
            raise ConfigError(f"{where}.analyses: layers compares the layers of the networks, and none of them names "
                              "layers: (or is a bring-your-own store, which may hold them); list layers: for a "
                              "network (docs/configuration.md) or drop layers from analyses")
    if "n95" in analyses and not exp.spec["mapping"]["sample_sizes"]:
        # reported at the experiment: the two keys that disagree are both below it
        raise ConfigError(f"{where}: analyses lists n95, which reads the sample-efficiency curves "
                          "(tables/sample_efficiency.csv), and mapping.sample_sizes is not set; list the fit sizes in "
                          "mapping.sample_sizes (e.g. [32, 64, 128, all]) or drop n95 from analyses")


TASK = Task(
    name="closed_set",
    summary="the target's classifier reads mapped features (paper Table 2)",
    tables={"closed_set": "tables/closed_set.csv", "closed_set_matrix": "tables/closed_set_matrix.csv",
            "networks_table": "tables/networks.csv"},
    figures={"closed_set_heatmap": "figures/closed_set_heatmap.{ext}"},
    heatmaps={"closed_set_heatmap": ("closed_set_matrix", "target classifier accuracy on mapped source features",
                                     "target network (classifier)")},
    splits=lambda exp: list(dict.fromkeys([exp.fit_split, exp.eval_split])),
    classifier=True,
    fit_pass=True,
    check=check,
    analyses={
        "asymmetry": {"asymmetry": "tables/asymmetry.csv", "asymmetry_figure": "figures/asymmetry.{ext}"},
        "composition": {"composition": "tables/composition.csv", "composition_figure": "figures/composition.{ext}"},
        "classifier_view": {"classifier_view": "tables/classifier_view.csv",
                            "classifier_view_figure": "figures/classifier_view.{ext}"},
        "shared_space": {"shared_space": "tables/shared_space.csv", "shared_space_figure": "figures/shared_space.{ext}"},
        "index_predicts": {"index_predicts": "tables/index_predicts.csv",
                           "index_predicts_pairs": "tables/index_predicts_pairs.csv",
                           "index_predicts_figure": "figures/index_predicts.{ext}"},
        "n95": {"n95": "tables/n95.csv"},
        "layers": {"layer_similarity": "tables/layer_similarity.csv", "layer_maps": "tables/layer_maps.csv",
                   "layer_similarity_figure": "figures/layer_similarity.{ext}",
                   "layer_maps_figure": "figures/layer_maps.{ext}"},
    },
)
