"""Steps of ``workflow/rules/report.smk``: the figures."""

from __future__ import annotations


from . import step


def _figure_job(title):
    """The networks' labels and controls, and the figure's title (``title(plan, wc)``)."""
    def job(plan, wc) -> dict:
        return {"labels": plan.labels(wc.exp), "controls": plan.controls(wc.exp), "title": title(plan, wc)}

    return job


@step(job=_figure_job(lambda plan, wc: f"{wc.exp}: similarity of the embedding spaces (fit split)"))
def plot_similarity(table: str, png: str, svg: str, labels: dict, controls: list[str], title: str) -> None:
    """One heatmap panel per similarity index."""
    import pandas as pd

    from ..evaluate import plots

    t = pd.read_csv(table)
    plots.similarity_heatmap(t, list(labels), labels, controls, title, [png, svg])


def _sample_efficiency_figure_job(plan, wc) -> dict:
    """Labels, controls, the title, and whether ``mapping.sample_sizes`` holds ``all`` (the whole fit split)."""
    title = f"{wc.exp}: maps into {plan.labels(wc.exp)[wc.target]} by fit samples"
    return {**_figure_job(lambda plan, wc: title)(plan, wc),
            "whole": "all" in plan.experiments[wc.exp].mapping["sample_sizes"]}


@step(job=_sample_efficiency_figure_job)
def plot_sample_efficiency(table: str, target: str, png: str, svg: str, labels: dict, controls: list[str],
                           title: str, whole: bool = False) -> None:
    """Accuracy of maps into ``target`` against the number of fit samples, one line per source and method."""
    import pandas as pd

    from ..evaluate import plots

    plots.sample_efficiency(pd.read_csv(table), target, labels, controls, title, [png, svg], whole=whole)


@step(job=_figure_job(lambda plan, wc: f"{wc.exp}: the map methods side by side (evaluation split)"))
def plot_methods(table: str, png: str, svg: str, labels: dict, controls: list[str], title: str) -> None:
    """Every map method's accuracy loss for every ordered pair, side by side (``tables/closed_set.csv``)."""
    import pandas as pd

    from ..evaluate import plots

    plots.methods(pd.read_csv(table), labels, controls, title, [png, svg])


@step(job=_figure_job(lambda plan, wc: f"{wc.exp}: asymmetry, the share of the target's accuracy each direction "
                                      "keeps (evaluation split)"))
def plot_asymmetry(table: str, png: str, svg: str, labels: dict, controls: list[str], title: str) -> None:
    """The ordered matrix of relative accuracies, decided orders framed (``tables/asymmetry.csv``)."""
    import pandas as pd

    from ..evaluate import plots

    plots.asymmetry(pd.read_csv(table), list(labels), labels, controls, title, [png, svg])


@step(job=_figure_job(lambda plan, wc: f"{wc.exp}: composed maps A -> B -> C against the direct A -> C "
                                      "(evaluation split)"))
def plot_composition(table: str, png: str, svg: str, labels: dict, controls: list[str], title: str) -> None:
    """Direct against composed accuracy of every triple (``tables/composition.csv``)."""
    import pandas as pd

    from ..evaluate import plots

    plots.composition(pd.read_csv(table), labels, controls, title, [png, svg])


@step(job=_figure_job(lambda plan, wc: f"{wc.exp}: what the target's classifier sees of each map's residual "
                                      "(evaluation split)"))
def plot_classifier_view(table: str, png: str, svg: str, labels: dict, controls: list[str], title: str) -> None:
    """Accuracy loss against the feature fit and against the share of the residual the classifier sees
    (``tables/classifier_view.csv``)."""
    import pandas as pd

    from ..evaluate import plots

    plots.classifier_view(pd.read_csv(table), labels, controls, title, [png, svg])


@step(job=_figure_job(lambda plan, wc: f"{wc.exp}: A -> shared space -> B against the direct ridge map A -> B "
                                      "(evaluation split)"))
def plot_shared_space(table: str, png: str, svg: str, labels: dict, controls: list[str], title: str) -> None:
    """Direct against shared-space accuracy of every ordered pair (``tables/shared_space.csv``)."""
    import pandas as pd

    from ..evaluate import plots

    plots.shared_space(pd.read_csv(table), labels, controls, title, [png, svg])


@step(job=_figure_job(lambda plan, wc: f"{wc.exp}: layer by layer, similarity of every pair of layers (fit split)"))
def plot_layer_similarity(table: str, png: str, svg: str, labels: dict, controls: list[str], title: str) -> None:
    """A layer x layer heatmap per pair of networks, the network with itself included
    (``tables/layer_similarity.csv``)."""
    import pandas as pd

    from ..evaluate import plots

    plots.layer_similarity(pd.read_csv(table), list(labels), labels, controls, title, [png, svg])


@step(job=_figure_job(lambda plan, wc: f"{wc.exp}: maps from every layer, read by the target's classifier "
                                      "(evaluation split)"))
def plot_layer_maps(table: str, png: str, svg: str, labels: dict, controls: list[str], title: str) -> None:
    """Accuracy against the source layer's depth, a panel per target and a line per source network
    (``tables/layer_maps.csv``)."""
    import pandas as pd

    from ..evaluate import plots

    plots.layer_maps(pd.read_csv(table), list(labels), labels, controls, title, [png, svg])


@step(job=_figure_job(lambda plan, wc: f"{wc.exp}: which index predicts mapped accuracy (pairs without a control)"))
def plot_index_predicts(table: str, pairs: str, png: str, svg: str, title: str, labels: dict | None = None,
                        controls: list | None = None) -> None:
    """Mapped accuracy against every predictor (``tables/index_predicts_pairs.csv``), Spearman in the titles."""
    import pandas as pd

    from ..evaluate import plots

    plots.index_predicts(pd.read_csv(table), pd.read_csv(pairs), title, [png, svg])


def _heatmap_job(figure: str):
    """The networks' labels and controls, and the title and x label of the task's heatmap ``figure``."""
    def job(plan, wc) -> dict:
        from ..plan import HEATMAPS

        _, what, xlabel = HEATMAPS[figure]
        return {"labels": plan.labels(wc.exp), "controls": plan.controls(wc.exp), "title": f"{wc.exp}: {what}",
                "xlabel": xlabel, "level": plan.experiments[wc.exp].spec["intervals"]["level"]}

    return job


@step("plot_closed_set", job=_heatmap_job("closed_set_heatmap"))
@step("plot_open_set", job=_heatmap_job("open_set_heatmap"))
@step("plot_identification", job=_heatmap_job("identification_heatmap"))
def plot_heatmap(matrix: str, png: str, svg: str, labels: dict, controls: list[str], title: str,
                 xlabel: str, table: str | None = None, level: float | None = None) -> None:
    """A Table 2 / Table 6 style heatmap of a matrix table, as PNG and SVG; below it, the widest interval of the
    cells drawn (from the full ``table``)."""
    import pandas as pd

    from ..evaluate import plots

    m = pd.read_csv(matrix, index_col=0)
    note = plots.interval_note(pd.read_csv(table), level) if table else ""
    plots.heatmap(m, labels, controls, title, [png, svg], xlabel=xlabel, note=note)


__all__ = ['plot_asymmetry', 'plot_classifier_view', 'plot_composition', 'plot_heatmap', 'plot_index_predicts', 'plot_layer_maps', 'plot_layer_similarity', 'plot_methods', 'plot_sample_efficiency', 'plot_shared_space', 'plot_similarity']
