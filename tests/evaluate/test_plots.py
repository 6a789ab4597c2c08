"""Figures fit whatever the names: no title or label is cut off at the figure's edge."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from embmap.evaluate import plots
from embmap.plan import HEATMAPS


def _inside(fig):
    """Everything drawn (what ``savefig(bbox_inches="tight")`` keeps) lies inside the figure."""
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    width, height = fig.get_size_inches()
    tol = 0.5 / fig.dpi
    assert box.x0 >= -tol and box.y0 >= -tol and box.x1 <= width + tol and box.y1 <= height + tol, (
        f"drawn texts span {box} beyond the {width}x{height} in figure")
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
    assert texts


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("experiment", ["digits", "an_experiment_with_a_rather_long_descriptive_name_2026",
                                        "x" * 180, "imagenet-" * 12])
def test_heatmaps_fit_long_experiment_names_and_labels(tmp_path, experiment, k):
    keys = [f"net{i}" for i in range(k)]
    labels = {keys[0]: "Inception-ResNet-v2 (TF Hub, feature vector, 2018, fine-tuned on something else)",
              keys[-1]: "random_" * 20}
    m = pd.DataFrame(np.linspace(0.2, 0.9, k * k).reshape(k, k), index=keys, columns=keys)
    what = HEATMAPS["closed_set_heatmap"][1]
    title = f"{experiment}: {what}"
    fig = plots.heatmap(m, labels, [keys[-1]], title, [tmp_path / "h.png", tmp_path / "h.svg"], keep=True)
    try:
        _inside(fig)
        shown = fig._suptitle.get_text()
        assert shown.replace("\n", "").replace(" ", "") == title.replace(" ", ""), "the title is wrapped, not cut"
        assert fig.get_size_inches()[0] < 40, "the figure grows as much as needed, not without bound"
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    assert (tmp_path / "h.png").stat().st_size > 1000 and (tmp_path / "h.svg").stat().st_size > 1000


def test_short_labels_keep_at_most_three_lines():
    assert plots.short_label("mlp") == "mlp"
    long = plots.short_label("a" * 200)
    assert long.count("\n") == 2 and long.endswith("…") and max(map(len, long.split("\n"))) <= plots.LABEL_CHARS


def test_layer_labels_keep_what_differs_between_a_networks_layers():
    fused = "efficientnet-lite3/model/stem/Relu6;efficientnet-lite3/model/stem/tpu_batch_normalization/Fused"
    got = plots.layer_labels([fused, "efficientnet-lite3/model/blocks_4/Relu6;x/y", "embedding"])
    assert got == {fused: "stem/Relu6", "efficientnet-lite3/model/blocks_4/Relu6;x/y": "blocks_4/Relu6",
                   "embedding": "embedding"}
    # names without a shared scope, or a single path, are left whole (a path keeps at least its last part)
    assert plots.layer_labels(["conv1", "mid/relu", "embedding"]) == {"conv1": "conv1", "mid/relu": "mid/relu",
                                                                      "embedding": "embedding"}
    assert plots.layer_labels(["a/b/c", "a/b/c2"]) == {"a/b/c": "c", "a/b/c2": "c2"}
    assert plots.layer_labels(["a/b", "a/b/c"]) == {"a/b": "b", "a/b/c": "b/c"}


def test_sample_efficiency_figure_keeps_its_size(tmp_path):
    """Log-x tick labels outside the view are not drawn: they must not grow the figure (they once made 16,000 px PNGs)."""
    rows = [{"source": src, "target": "cnn", "method": m, "n_fit": n, "accuracy": 0.1 + n / 1000}
            for src in ["mlp", "resnet", "random"] for m in ["ridge", "lstsq", "procrustes"] for n in [64, 256, 898]]
    rows.append({"source": "cnn", "target": "cnn", "method": "native", "n_fit": 898, "accuracy": 0.97})
    png = tmp_path / "s.png"
    plots.sample_efficiency(pd.DataFrame(rows), "cnn", {}, ["random"], "digits: sample efficiency into cnn", [png])
    from PIL import Image

    with Image.open(png) as im:
        w, h = im.size
    assert w <= 2 * 6.4 * 150 and h <= 2 * 4.2 * 150, (w, h)


def test_sample_efficiency_ticks_are_the_fit_sizes_and_the_legend_covers_no_point():
    import matplotlib.pyplot as plt

    sizes = [32, 64, 128, 256, 512, 1257]
    rows = [{"source": src, "target": "cnn", "method": m, "n_fit": n, "accuracy": min(0.99, 0.5 + n / 1500)}
            for src in ["mlp", "resnet", "separable", "random"] for m in ["ridge", "lstsq", "procrustes"]
            for n in sizes]
    rows.append({"source": "cnn", "target": "cnn", "method": "native", "n_fit": None, "accuracy": 0.98})
    fig = plots.sample_efficiency_figure(pd.DataFrame(rows), "cnn", {}, ["random"], "t", whole=True)
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["32", "64", "128", "256", "512", "1,257\n(all)"]
        legend = fig.legends[0].get_window_extent()
        points = np.vstack([ax.transData.transform(np.c_[line.get_xdata(), line.get_ydata()])
                            for line in ax.get_lines() if len(line.get_xdata()) > 2])
        inside = ((points[:, 0] >= legend.x0) & (points[:, 0] <= legend.x1)
                  & (points[:, 1] >= legend.y0) & (points[:, 1] <= legend.y1))
        assert not inside.any(), f"{inside.sum()} data points under the legend"
        assert legend.x0 >= ax.get_window_extent().x1  # beside the axes
    finally:
        plt.close(fig)


def test_each_similarity_panel_spans_its_own_values_so_close_values_differ_in_colour():
    m = np.array([[np.nan, 0.85, 0.89], [0.85, np.nan, 0.87], [0.89, 0.87, np.nan]])
    assert plots.colour_range(m, (0.0, 1.0)) == (0.85, 0.89)
    assert plots.colour_range(np.full((2, 2), 0.5), (0.0, 1.0)) == (0.0, 1.0)  # all alike: the index's range
    assert plots.colour_range(np.array([[np.nan]]), (0.0, 1.57)) == (0.0, 1.57)


def test_the_methods_figure_keeps_pairs_without_a_control_in_range_and_marks_the_others_at_its_edge():
    import matplotlib.pyplot as plt

    rows = []
    for a, b, loss in [("a", "b", -0.02), ("b", "a", -0.01), ("a", "rnd", -0.9), ("rnd", "a", 0.8)]:
        for m, extra in [("ridge", 0.0), ("lstsq", -0.01), ("analytic", 0.01)]:
            rows.append({"source": a, "target": b, "method": m, "accuracy": 0.9 + loss + extra,
                         "target_accuracy": 0.9})
    fig = plots.methods_figure(pd.DataFrame(rows), {}, ["rnd"])
    try:
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["ridge", "lstsq", "analytic"]
        lo, hi = ax.get_ylim()
        assert -0.1 < lo < -0.03 and 0.0 < hi < 0.1  # the range of a-b and b-a, not of the control's pairs
        edge = [line for line in ax.get_lines() if line.get_marker() in ("^", "v")]
        assert len(edge) == 6  # the control's six points beyond it
    finally:
        plt.close(fig)
