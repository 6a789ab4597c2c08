"""Source ``tflite``: a TensorFlow Lite flat buffer run by TensorFlow's own interpreter (float or quantised).

What the file states is read from it: the input's size, type and
quantisation. A quantised input is fed as the quantisation says: a pixel
value in [0, 1] is scaled to ``input_range`` (default: the whole span of the
input's integer type, so uint8 pixels 0..255 go in as they are) and then
quantised with the input's scale and zero point.

``features`` is the tensor whose value is the embedding (default: the input
of the last ``FULLY_CONNECTED`` op); the classifier is that op (or the one
whose output ``classifier`` names): C and b are its weights and bias,
dequantised with their own scales (per channel where they have them), and
are verified against the op's own output. For a quantised output the
tolerance is stated in its quantisation: C f + b, clipped to the range the
output type can hold, must lie within one output step of what the
interpreter computed (its integer kernel rounds to half a step). Images run
one at a time (TFLite files usually fix the batch to 1).

Standard library only at import time (the source registry imports it).
"""

from __future__ import annotations

import threading

from .base import NONE, FileModel, Model, NetworkError, Source, check_model_file, listing, tf

FULLY_CONNECTED = "FULLY_CONNECTED"


def _quant(detail: dict):
    """(scales, zero points, axis) of a tensor, or None for a float tensor."""
    import numpy as np

    q = detail.get("quantization_parameters") or {}
    scales = np.asarray(q.get("scales", []), np.float64)
    if not len(scales) or not scales.any():
        return None
    zeros = np.asarray(q.get("zero_points", np.zeros(len(scales))), np.float64)
    return scales, zeros, int(q.get("quantized_dimension", 0))


def dequantize(values, detail: dict):
    """A tensor's real values: (q - zero_point) * scale, per channel along the quantised dimension."""
    import numpy as np

    values = np.asarray(values)
    q = _quant(detail)
    if q is None:
        return values.astype(np.float64)
    scales, zeros, axis = q
    shape = [1] * values.ndim
    if len(scales) > 1:
        shape[axis] = len(scales)
    return (values.astype(np.float64) - zeros.reshape(shape)) * scales.reshape(shape)


def type_span(dtype) -> tuple[int, int]:
    import numpy as np

    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


class TFLiteModel(FileModel):
    """A TFLite interpreter with every intermediate tensor kept, so the embedding, the logits and any layer can be
    read."""

    layer_kind = "tensor"

    def __init__(self, name: str, spec: dict, preprocessing: dict):
        import warnings

        t = tf()
        path = str(spec["model"])
        resolver = t.lite.experimental.OpResolverType
        threads = t.config.threading.get_intra_op_parallelism_threads() or None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation in favour of LiteRT
                # one interpreter without delegates shows the ops as they are (XNNPACK renames them DELEGATE) and
                # holds the weights; the other runs the images with TFLite's default CPU delegate, 4x faster
                inspect = t.lite.Interpreter(model_path=path,
                                             experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            inspect.allocate_tensors()
            it = self._runner(path, threads)
        except Exception as e:  # the interpreter raises ValueError or RuntimeError
            raise NetworkError(f"network {name!r}: cannot read the TFLite model {path}: {e}") from None
        inputs = it.get_input_details()
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4:
            shapes = [(d["name"], list(d["shape"])) for d in inputs]
            raise NetworkError(f"network {name!r}: {path} has inputs {shapes}; expected one image input "
                               "[1, height, width, channels]")
        self.input = inputs[0]
        own = tuple(int(v) for v in self.input["shape"][1:3])
        size = preprocessing.get("input_size")
        if size and tuple(size) != own:
            raise NetworkError(f"network {name!r}: {path} takes {own[0]} x {own[1]} images, the config asks for "
                               f"{size[0]} x {size[1]} (drop input_size, or fixed_input: true)")
        self.input_quant = _quant(self.input)
        input_range = preprocessing.get("input_range")
        if input_range is None:
            if self.input_quant is not None:
                lo, hi = type_span(self.input["dtype"])
                scale, zero = float(self.input_quant[0][0]), float(self.input_quant[1][0])
                input_range = (scale * (lo - zero), scale * (hi - zero))
            else:
                input_range = (0.0, 1.0)
        super().__init__(name, path, None, own, int(self.input["shape"][3]), input_range)
        self.interpreter, self.inspector = it, inspect
        self._path, self._threads = path, threads
        self._owner, self._local = threading.get_ident(), threading.local()
        self.details = {d["index"]: d for d in inspect.get_tensor_details()}
        ops = inspect._get_ops_details()  # the only listing of a model's ops the interpreter offers
        by_name = {d["name"]: i for i, d in self.details.items()}
        produced = {int(o) for op in ops for o in op["outputs"]}
        activations = [d["name"] for i, d in sorted(self.details.items()) if i in produced]
        fcs = [op for op in ops if op["op_name"] == FULLY_CONNECTED]
        self.head = None
        if spec.get("classifier") != NONE:
            if spec.get("classifier"):
                found = [op for op in fcs if self.details[int(op["outputs"][0])]["name"] == spec["classifier"]]
                if not found:
                    raise NetworkError(f"network {name!r}: no FULLY_CONNECTED op of {path} outputs "
                                       f"{spec['classifier']!r} (classifier); its FULLY_CONNECTED outputs: "
                                       f"{listing([self.details[int(op['outputs'][0])]['name'] for op in fcs])}")
                self.head = found[0]
            elif not fcs:
                raise NetworkError(f"network {name!r}: {path} has no FULLY_CONNECTED op to read a classifier from "
                                   f"(its ops end with {[op['op_name'] for op in ops[-5:]]}); use classifier: none")
            else:
                self.head = fcs[-1]
            self.classifier_handle = path
        if spec.get("features"):
            if spec["features"] not in by_name:
                raise NetworkError(f"network {name!r}: {path} has no tensor {spec['features']!r} (features); its "
                                   f"computed tensors: {listing(activations)}")
            self.feature_index = by_name[spec["features"]]
        elif self.head is not None:
            self.feature_index = int(self.head["inputs"][0])
        else:
            self.feature_index = int(it.get_output_details()[0]["index"])
        self.constants = [i for i in {int(v) for op in ops for v in op["inputs"] if v >= 0}
                          if i not in produced and i != self.input["index"]]
        self.produced = produced
        self._activations, self._by_name, self._layer_indices = activations, by_name, []

    def layer_names(self) -> list[str]:
        return list(self._activations)

    def _bind_layers(self, names: list[str]) -> None:
        """Every intermediate tensor is kept by the interpreter: the layers are read after each run."""
        self._layer_indices = [self._by_name[n] for n in names]

    def input_attrs(self) -> dict:
        out = super().input_attrs()
        out["input_dtype"] = str(self.input["dtype"].__name__)
        if self.input_quant is not None:
            scale, zero = self.input_quant[0][0], self.input_quant[1][0]
            out["input_quantisation"] = {"scale": float(scale), "zero_point": float(zero)}
        return out

    def _feed(self, x):
        """One preprocessed image [h, w, c] (float, in input_range) as the input tensor's type."""
        import numpy as np

        if self.input_quant is None:
            return x[None].astype(self.input["dtype"])
        lo, hi = type_span(self.input["dtype"])
        q = np.round(x / self.input_quant[0][0] + self.input_quant[1][0])
        return np.clip(q, lo, hi)[None].astype(self.input["dtype"])

    @staticmethod
    def _runner(path: str, threads: int | None):
        """An interpreter that runs images with every intermediate tensor kept (TFLite's default CPU delegate)."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation in favour of LiteRT
            it = tf().lite.Interpreter(model_path=path, experimental_preserve_all_tensors=True, num_threads=threads)
        it.allocate_tensors()
        return it

    def _thread_interpreter(self):
        """The interpreter of the calling thread (one runs one image at a time): the model's own in the thread that
        opened it, another of the same file in each other thread."""
        if threading.get_ident() == self._owner:
            return self.interpreter
        if getattr(self._local, "interpreter", None) is None:
            self._local.interpreter = self._runner(self._path, self._threads)
        return self._local.interpreter

    def _run(self, images):
        """(features float32 [n, d], the head's outputs dequantised float64 [n, classes] or None, {layer: its
        tensor dequantised [n, ...]}) of one invocation per image."""
        import numpy as np

        x = np.asarray(self.preprocess(images), np.float64)
        feats, logits, layers = [], [], [[] for _ in self._layer_indices]
        it = self._thread_interpreter()
        for image in x:
            it.set_tensor(self.input["index"], self._feed(image))
            it.invoke()
            feats.append(dequantize(it.get_tensor(self.feature_index), self.details[self.feature_index]).reshape(-1))
            if self.head is not None:
                out = int(self.head["outputs"][0])
                logits.append(dequantize(it.get_tensor(out), self.details[out]).reshape(-1))
            for values, i in zip(layers, self._layer_indices):
                t = dequantize(it.get_tensor(i), self.details[i])
                values.append(t.reshape(t.shape[1:]) if t.ndim > 1 and t.shape[0] == 1 else t)
        raw = {n: np.stack(v) for n, v in zip(self.layers, layers)}
        return np.stack(feats).astype(np.float32), (np.stack(logits) if logits else None), raw

    def _weights(self):
        """C [class, feature] and b [class] of the head op, dequantised."""
        import numpy as np

        def value(i):  # stored weights from the file; computed ones (a DEQUANTIZE of float16) from the last run
            return (self.interpreter if i in self.produced else self.inspector).get_tensor(i)

        w_index, b_index = int(self.head["inputs"][1]), (int(self.head["inputs"][2]) if len(self.head["inputs"]) > 2
                                                          else -1)
        weight = dequantize(value(w_index), self.details[w_index])
        bias = dequantize(value(b_index), self.details[b_index]) if b_index >= 0 else np.zeros(weight.shape[0])
        return weight.reshape(weight.shape[0], -1), bias.reshape(-1), w_index, b_index

    def classifier(self, images, features=None, logits=None, rtol: float | None = None):
        """C, b of the classifier op, verified against its own output within its quantisation."""
        import numpy as np

        from . import classifiers

        if features is None or logits is None:
            features, logits = self._forward(images)
        weight, bias, w_index, b_index = self._weights()
        f = np.asarray(features, np.float64)
        if weight.shape[1] != f.shape[1]:
            raise NetworkError(f"network {self.name!r}: the FULLY_CONNECTED op reads {weight.shape[1]} features, "
                               f"the feature tensor holds {f.shape[1]}")
        predicted = f @ weight.T + bias
        out = self.details[int(self.head["outputs"][0])]
        q = _quant(out)
        atol, tolerance = None, ""
        if q is not None:  # the integer kernel saturates to the output type and rounds to half a step
            lo, hi = type_span(out["dtype"])
            scale, zero = float(q[0][0]), float(q[1][0])
            predicted = np.clip(predicted, scale * (lo - zero), scale * (hi - zero))
            atol = scale * 1.0 + 1e-9
            tolerance = f"one step of the {out['dtype'].__name__} output quantisation, scale {scale:.4g}"
        try:
            err = classifiers.verify_outputs(predicted, logits, f"FULLY_CONNECTED weights "
                                             f"{self.details[w_index]['name']!r}", rtol or classifiers.RTOL,
                                             atol=atol, tolerance=tolerance)
        except classifiers.ClassifierError as e:
            raise NetworkError(f"network {self.name!r}: {e}") from None
        return weight.astype(np.float32), bias.astype(np.float32), {
            "method": "variables", "kernel": self.details[w_index]["name"],
            "bias": self.details[b_index]["name"] if b_index >= 0 else None, "max_logit_error": err,
            "tolerance": tolerance or f"relative {rtol or classifiers.RTOL}", "n_images": len(f),
            "quantised": q is not None}

    def parameters(self) -> int | None:
        import numpy as np

        return int(sum(np.prod(self.details[i]["shape"]) for i in self.constants)) or None


def open_tflite(name: str, spec: dict, preprocessing: dict, model_dir=None) -> Model:
    return TFLiteModel(name, spec, preprocessing)


SOURCE = Source("tflite", open_tflite, check_model_file, sized=True)
