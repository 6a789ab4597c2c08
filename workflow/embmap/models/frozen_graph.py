"""Source ``frozen_graph``: a TF1 frozen graph (``GraphDef`` ``.pb``), as facenet releases its face networks.

The graph is read through ``tf.compat.v1.wrap_function`` and pruned to the
named input, output and optional phase-train tensors (facenet: ``input:0``,
``embeddings:0``, ``phase_train:0``, fed ``False``). facenet standardises
0-255 pixels as ``(x - 127.5) / 128``, the schema's default ``input_range``
for pixels in [0, 1]. Face networks have no classifier: task open_set only.
Standard library only at import time (the source registry imports it).
"""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError
from .base import Model, NetworkError, Source, tf


class FrozenGraphModel(Model):
    """A frozen graph with named ``input``, ``output`` and (None for none) ``phase_train`` tensors."""

    def __init__(self, name, graph, input, output, phase_train, input_size, channels, input_range):
        super().__init__(name, str(graph), None, input_size, channels, input_range)
        t = tf()
        gd = t.compat.v1.GraphDef()
        try:
            gd.ParseFromString(Path(graph).read_bytes())
        except Exception as e:  # missing file or not a GraphDef
            raise NetworkError(f"network {name!r}: cannot read a frozen graph from {graph}: {e}") from None
        wrapped = t.compat.v1.wrap_function(lambda: t.compat.v1.import_graph_def(gd, name=""), [])
        g = wrapped.graph

        def tensor(name_):
            try:
                return g.get_tensor_by_name(name_)
            except (KeyError, ValueError):
                inputs = [op.name for op in g.get_operations() if op.type in ("Placeholder", "PlaceholderWithDefault")]
                raise NetworkError(f"network {name!r}: the graph {graph} has no tensor {name_!r} "
                                   f"(its placeholders: {inputs})") from None

        feeds = [tensor(input)] + ([tensor(phase_train)] if phase_train else [])
        self._phase = bool(phase_train)
        self._fn = wrapped.prune(feeds, tensor(output))

    def features(self, images):
        import numpy as np

        args = [self.preprocess(images)] + ([tf().constant(False)] if self._phase else [])
        f = self._fn(*args).numpy()
        if f.ndim != 2:
            raise NetworkError(f"network {self.name!r}: output of shape {f.shape}; expected [batch, feature]")
        return f.astype(np.float32)


def check(where: str, spec: dict, ctx) -> None:
    p = ctx.path(spec["graph"])
    if ctx.check_paths and not p.exists():
        raise ConfigError(f"{where}.graph: nothing at {p}")


def open_frozen_graph(name: str, spec: dict, preprocessing: dict, model_dir=None) -> Model:
    return FrozenGraphModel(name, spec["graph"], spec["input"], spec["output"], spec["phase_train"],
                            preprocessing["input_size"], spec.get("channels"), preprocessing["input_range"])


SOURCE = Source("frozen_graph", open_frozen_graph, check, classifier=False, layers=False)
