"""Source ``onnx``: an ONNX model (the format PyTorch, timm and Hugging Face export to) run by onnxruntime.

onnxruntime and onnx are the optional extra ``embmap[onnx]`` (also in
``envs/tensorflow.yaml``). The graph is read with ``onnx``, the tensors the
workflow needs are exposed as extra graph outputs, and the edited graph runs
in one ``onnxruntime`` session (on the first available of its execution
providers, CPU last):

- ``features``: the tensor (a node's output) whose value is the embedding;
  by default the input of the classifier (with ``classifier: none``, the
  graph's output);
- the classifier: the node that produces the graph's output (or the tensor
  ``classifier`` names), which must be linear: ``Gemm`` (its ``transB``,
  ``alpha`` and ``beta`` applied), or ``MatMul`` with or without an ``Add``
  of a stored bias. C and b are read from the stored initialisers and
  verified against that node's own output. Any other final op is refused
  with a message that names it and suggests ``classifier: none``.

Pixels are scaled to ``input_range`` (required: ONNX files do not say what
they expect), then optionally ``standardize``, ``mean``/``std`` and
``channel_order: bgr``; channel-first inputs ([N, 3, H, W], PyTorch's) are
transposed to. Inputs listed in the graph that are stored initialisers
(older exporters list every weight as an input) are constants, not feeds. A
batch dimension fixed to 1 runs images one at a time.

Standard library only at import time (the source registry imports it).
"""

from __future__ import annotations

from .base import NONE, FileModel, Model, NetworkError, Source, check_model_file, listing

LINEAR = ("Gemm", "MatMul", "Add")


def _import(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise NetworkError(f"source onnx needs the packages onnx and onnxruntime: pip install 'embmap[onnx]' "
                           f"({name} is missing)") from None


class ONNXModel(FileModel):
    """An ONNX graph with its embedding (and its classifier's output, and its layers) exposed as outputs of one
    session."""

    layer_kind = "tensor"

    def __init__(self, name: str, spec: dict, preprocessing: dict):
        import numpy as np

        onnx = _import("onnx")
        from onnx import numpy_helper

        path = str(spec["model"])
        try:
            m = onnx.load(path)
        except Exception as e:  # protobuf and file errors
            raise NetworkError(f"network {name!r}: cannot read the ONNX model {path}: {e}") from None
        g = m.graph
        self.stored = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for node in g.node:  # weights exported as Constant nodes
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.stored[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        feeds = [i for i in g.input if i.name not in self.stored]
        if len(feeds) != 1:
            raise NetworkError(f"network {name!r}: {path} has inputs {[i.name for i in feeds]}; expected one image "
                               "input")
        del g.input[:]
        g.input.extend(feeds)  # initialisers listed as inputs are constants: let the runtime fold them
        dims = [d.dim_value if d.HasField("dim_value") else None for d in feeds[0].type.tensor_type.shape.dim]
        if len(dims) != 4:
            raise NetworkError(f"network {name!r}: input {feeds[0].name!r} of {path} has shape {dims}; expected "
                               "[batch, channels, height, width] or [batch, height, width, channels]")
        self.channels_first = dims[1] in (1, 3) and dims[3] not in (1, 3)
        own = tuple(dims[2:4] if self.channels_first else dims[1:3])
        size = preprocessing.get("input_size")
        if size and None not in own and tuple(size) != own:
            raise NetworkError(f"network {name!r}: {path} takes {own[0]} x {own[1]} images, the config asks for "
                               f"{size[0]} x {size[1]} (drop input_size, or fixed_input: true)")
        size = size or (own if None not in own else None)
        if not size:
            raise NetworkError(f"network {name!r}: {path} accepts any image size; give input_size")
        channels = dims[1] if self.channels_first else dims[3]
        super().__init__(name, path, None, size, channels, preprocessing["input_range"])
        self.bgr = spec.get("channel_order") == "bgr"
        self.batch_one = dims[0] == 1
        producer = {out: node for node in g.node for out in node.output}
        tensors = list(producer)
        self.head, self.weight, self.bias, head_input = None, None, None, None
        if spec.get("classifier") != NONE:
            out = spec.get("classifier") or g.output[0].name
            if out not in producer:
                raise NetworkError(f"network {name!r}: no node of {path} outputs {out!r} (classifier); its tensors: "
                                   f"{listing(tensors)}")
            self.head = out
            head_input, self.weight, self.bias, self.linear = self._linear(name, path, producer, out)
            self.classifier_handle = path
        if spec.get("features"):
            if spec["features"] not in producer:
                raise NetworkError(f"network {name!r}: no node of {path} outputs {spec['features']!r} (features); "
                                   f"its tensors: {listing(tensors)}")
            self.feature_name = spec["features"]
        else:
            self.feature_name = head_input if self.head is not None else g.output[0].name
        self.feed_name, self._graph, self._tensors = feeds[0].name, m, tensors
        self.layer_channel_axis = 1 if self.channels_first else -1
        self._bind_layers([])
        self.n_parameters = int(sum(np.asarray(v).size for v in self.stored.values()))

    def layer_names(self) -> list[str]:
        return list(self._tensors)

    def _bind_layers(self, names: list[str]) -> None:
        """One session whose outputs are the embedding, the classifier's output and every tensor of ``names``."""
        onnx, ort = _import("onnx"), _import("onnxruntime")
        wanted = [self.feature_name] + ([self.head] if self.head is not None else [])
        wanted += names
        m = onnx.ModelProto()
        m.CopyFrom(self._graph)
        g = m.graph
        present = {o.name for o in g.output}
        for t in dict.fromkeys(wanted):
            if t not in present:
                g.output.append(onnx.helper.make_empty_tensor_value_info(t))
        options = ort.SessionOptions()
        options.log_severity_level = 3  # exporters' benign warnings (initialisers listed as inputs) stay quiet
        # every operator on the threads TensorFlow's kernels have in extraction (store.kernel_threads, fixed
        # whatever the job's cores): its sums then do not depend on the job's cores; extraction runs the job's
        # other cores as batches side by side (session.run may be called from threads)
        import tensorflow as tf

        options.intra_op_num_threads = tf.config.threading.get_intra_op_parallelism_threads() or 1
        options.inter_op_num_threads = 1
        providers = [p for p in ort.get_available_providers() if p != "CPUExecutionProvider"] + ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(m.SerializeToString(), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own kinds
            raise NetworkError(f"network {self.name!r}: onnxruntime cannot run {self.handle}: {e}") from None
        self.outputs = wanted

    def _linear(self, name, path, producer, out):
        """(input tensor, C [class, feature], b [class], description) of the linear node producing ``out``."""
        import numpy as np

        node = producer[out]

        def stored(tensor):
            if tensor not in self.stored:
                raise NetworkError(f"network {name!r}: the {node.op_type} node {node.name!r} of {path} computes its "
                                   f"operand {tensor!r} instead of storing it; name a linear layer with stored "
                                   "weights (classifier: TENSOR), or classifier: none")
            return np.asarray(self.stored[tensor], np.float64)

        if node.op_type == "Gemm":
            at = {a.name: a for a in node.attribute}
            if at.get("transA") and at["transA"].i:
                raise NetworkError(f"network {name!r}: Gemm {node.name!r} of {path} transposes its input (transA)")
            w = stored(node.input[1])
            w = w if (at.get("transB") and at["transB"].i) else w.T
            alpha = at["alpha"].f if "alpha" in at else 1.0
            beta = at["beta"].f if "beta" in at else 1.0
            bias = beta * stored(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0])
            return node.input[0], alpha * w, np.broadcast_to(bias, (w.shape[0],)).copy(), f"Gemm {node.name!r}"
        if node.op_type == "Add":
            parts = [producer.get(i) for i in node.input]
            mm = [(p, i) for p, i in zip(parts, node.input) if p is not None and p.op_type == "MatMul"]
            other = [i for i in node.input if i in self.stored]
            if len(mm) == 1 and len(other) == 1:
                matmul = mm[0][0]
                w = stored(matmul.input[1]).T
                return matmul.input[0], w, np.broadcast_to(stored(other[0]), (w.shape[0],)).copy(), \
                    f"MatMul {matmul.name!r} + Add {node.name!r}"
        if node.op_type == "MatMul":
            w = stored(node.input[1]).T
            return node.input[0], w, np.zeros(w.shape[0]), f"MatMul {node.name!r}"
        raise NetworkError(f"network {name!r}: the op producing {out!r} in {path} is {node.op_type} ({node.name!r}), "
                           "not a linear layer (Gemm, MatMul, MatMul + Add); name the linear layer's output "
                           "(classifier: TENSOR), or classifier: none for a network without a classifier")

    def input_attrs(self) -> dict:
        return {**super().input_attrs(), "channel_order": "bgr" if self.bgr else "rgb",
                "layout": "NCHW" if self.channels_first else "NHWC"}

    def _run(self, images):
        import numpy as np

        x = np.asarray(self.preprocess(images), np.float32)
        if self.bgr:
            x = x[..., ::-1]
        if self.channels_first:
            x = x.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x)
        runs = [x[i:i + 1] for i in range(len(x))] if self.batch_one else [x]
        names = list(dict.fromkeys(self.outputs))
        outs = [dict(zip(names, self.session.run(names, {self.feed_name: r}))) for r in runs]
        f = np.concatenate([o[self.feature_name].reshape(len(r), -1) for o, r in zip(outs, runs)])
        z = (np.concatenate([o[self.head].reshape(len(r), -1) for o, r in zip(outs, runs)]) if self.head is not None
             else None)
        raw = {n: np.concatenate([o[n] for o in outs]) for n in self.layers}
        return f.astype(np.float32), (None if z is None else z.astype(np.float64)), raw

    def classifier(self, images, features=None, logits=None, rtol: float | None = None):
        import numpy as np

        from . import classifiers

        if features is None or logits is None:
            features, logits = self._forward(images)
        f = np.asarray(features, np.float64)
        if self.weight.shape[1] != f.shape[1]:
            raise NetworkError(f"network {self.name!r}: {self.linear} reads {self.weight.shape[1]} features, the "
                               f"feature tensor {self.feature_name!r} holds {f.shape[1]}")
        try:
            err = classifiers.verify_outputs(f @ self.weight.T + self.bias, logits, f"the weights of {self.linear}",
                                             rtol or classifiers.RTOL)
        except classifiers.ClassifierError as e:
            raise NetworkError(f"network {self.name!r}: {e}") from None
        return self.weight.astype(np.float32), self.bias.astype(np.float32), {
            "method": "variables", "kernel": self.linear, "bias": self.linear, "max_logit_error": err,
            "n_images": len(f)}

    def parameters(self) -> int | None:
        return self.n_parameters or None


def open_onnx(name: str, spec: dict, preprocessing: dict, model_dir=None) -> Model:
    return ONNXModel(name, spec, preprocessing)


SOURCE = Source("onnx", open_onnx, check_model_file, sized=True)
