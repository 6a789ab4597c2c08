"""Face networks and face alignment for the open-set task (paper section 4).

Alignment (MTCNN from the ``mtcnn`` package, whose weights ship in its wheel):

- detections are computed once per dataset (:func:`detect`, the largest face
  of each image: box and five landmarks) and cached as a table;
- ``facenet`` style: a square around the box centre, side = the box's longer
  side + ``margin`` pixels, resized to ``size`` (facenet: 160, margin 32);
- ``arcface`` style: the similarity transform (Umeyama, no reflection) taking
  the five landmarks onto the standard ArcFace template, warped to
  ``size`` x ``size`` (112);
- an image without a face falls back to a centre crop: a pseudo-detection,
  the central square of half the shorter side with the template's landmarks
  scaled into it, cropped the same way. The number of fallbacks is kept in the
  crop store's attributes and, through the embedding stores, in the tables'
  metadata.

Crops are cached per alignment (:func:`write_crops`, an ``aligned/KEY.zarr``
store of uint8 [image, size, size, 3]) so every network with that alignment
reads the same crops (:class:`AlignedImages`).

Networks:

- :class:`FrozenGraphNetwork`: a TF1 frozen graph ``.pb`` with named input,
  output and optional phase-train tensors (facenet: ``input:0``,
  ``embeddings:0``, ``phase_train:0``; fixed standardisation
  ``(x - 127.5) / 128`` of 0-255 pixels, i.e. input range
  [-127.5/128, 127.5/128] for pixels in [0, 1]);
- :class:`ArcFaceNetwork`: peteryuX/arcface-tf2's inference architecture (a
  Keras application backbone, then BatchNorm, Dropout, Flatten, Dense(512),
  BatchNorm), rebuilt and restored from the release checkpoint; input RGB in
  [0, 1] at 112.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .networks import Network, NetworkError, _keras, _tf

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # left = smaller x in the image
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                             [70.7299, 92.2041]])  # for 112 x 112 crops
FACENET_RANGE = (-127.5 / 128.0, 127.5 / 128.0)  # (255 x - 127.5) / 128 for x in [0, 1]
STYLES = ("facenet", "arcface")
DETECTION_COLUMNS = ["id", "detected", "confidence", "height", "width", "x", "y", "w", "h"] + [
    f"{k}_{c}" for k in LANDMARKS for c in "xy"]


class AlignmentError(ValueError):
    pass


# -- alignment specs ----------------------------------------------------------------
def align_spec(spec: dict) -> dict:
    """An ``align`` block with defaults: facenet 160 px, margin 32; arcface 112 px."""
    style = spec.get("style")
    if style not in STYLES:
        raise AlignmentError(f"align.style: {style!r}; use one of {STYLES}")
    size = int(spec.get("size", 160 if style == "facenet" else 112))
    return {"style": style, "size": size, "margin": int(spec.get("margin", 32)) if style == "facenet" else 0}


def parse_align_key(key: str) -> dict:
    """The alignment a key of :func:`embmap.plan.align_key` names: ``facenet160m32``, ``arcface112``."""
    import re

    m = re.fullmatch(r"facenet(\d+)m(\d+)|arcface(\d+)", key)
    if not m:
        raise AlignmentError(f"alignment {key!r}: expected facenetSIZEmMARGIN or arcfaceSIZE")
    if m.group(1):
        return {"style": "facenet", "size": int(m.group(1)), "margin": int(m.group(2))}
    return {"style": "arcface", "size": int(m.group(3)), "margin": 0}


# -- detection ----------------------------------------------------------------------
@dataclass
class Detection:
    box: np.ndarray  # x, y, w, h
    landmarks: np.ndarray  # [5, 2] in LANDMARKS order
    confidence: float
    detected: bool


def largest_face(faces: list[dict]) -> dict | None:
    """The face with the largest box among ``mtcnn`` results, or None."""
    if not faces:
        return None
    return max(faces, key=lambda f: f["box"][2] * f["box"][3])


def detect(images, detector=None) -> list[dict | None]:
    """The largest face of each uint8 RGB image (``mtcnn.MTCNN`` results), None where there is none."""
    if detector is None:
        from mtcnn import MTCNN

        detector = MTCNN()
    return [largest_face(detector.detect_faces(np.asarray(im))) for im in images]


def detection_row(id_: str, image_shape, face: dict | None) -> dict:
    row = {"id": id_, "detected": face is not None, "height": int(image_shape[0]), "width": int(image_shape[1])}
    if face is None:
        return row
    row["confidence"] = float(face["confidence"])
    row.update(dict(zip("xywh", (float(v) for v in face["box"]))))
    for k in LANDMARKS:
        row[f"{k}_x"], row[f"{k}_y"] = (float(v) for v in face["keypoints"][k])
    return row


def centre_detection(height: int, width: int) -> Detection:
    """The fallback: the central square of half the shorter side, template landmarks scaled into it."""
    side = min(height, width) / 2.0
    x0, y0 = (width - side) / 2.0, (height - side) / 2.0
    marks = np.array([x0, y0]) + ARCFACE_TEMPLATE / 112.0 * side
    return Detection(np.array([x0, y0, side, side]), marks, 0.0, False)


def detection_of(row) -> Detection:
    """A :class:`Detection` from a row of the detections table (the centre fallback where none was found)."""
    if not bool(row["detected"]):
        return centre_detection(int(row["height"]), int(row["width"]))
    marks = np.array([[row[f"{k}_x"], row[f"{k}_y"]] for k in LANDMARKS], dtype=np.float64)
    return Detection(np.array([row["x"], row["y"], row["w"], row["h"]], dtype=np.float64), marks,
                     float(row["confidence"]), True)


# -- crops --------------------------------------------------------------------------
def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation) best taking ``src`` [k, 2] to ``dst`` (Umeyama)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    rot = u @ e @ vt
    scale = np.trace(np.diag(sig) @ e) / s.var(0).sum()
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def _warp(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Apply the 2x3 map ``m`` (image -> crop coordinates) to get a size x size crop; outside is black."""
    from PIL import Image

    a = m[:, :2]
    t = m[:, 2] + a @ [0.5, 0.5] - 0.5  # pixel indices -> PIL's continuous coordinates (centres at +0.5)
    inv = np.linalg.inv(a)
    coeffs = np.hstack([inv, (-inv @ t)[:, None]]).ravel()  # crop (x, y) -> image (x, y)
    im = Image.fromarray(np.asarray(image, np.uint8))
    out = im.transform((size, size), Image.Transform.AFFINE, data=tuple(coeffs), resample=Image.Resampling.BILINEAR)
    return np.asarray(out)


def facenet_crop(image: np.ndarray, box, size: int = 160, margin: int = 32) -> np.ndarray:
    """Square around the box centre, side = longer box side + ``margin`` pixels, resized to ``size``."""
    x, y, w, h = (float(v) for v in box)
    side = max(w, h) + margin
    cx, cy = x + w / 2.0, y + h / 2.0
    scale = size / side
    m = np.array([[scale, 0.0, -(cx - side / 2.0) * scale], [0.0, scale, -(cy - side / 2.0) * scale]])
    return _warp(image, m, size)


def arcface_crop(image: np.ndarray, landmarks, size: int = 112) -> np.ndarray:
    """Five landmarks onto the ArcFace template (scaled to ``size``) by a similarity transform."""
    m = similarity_transform(landmarks, ARCFACE_TEMPLATE * size / 112.0)
    return _warp(image, m, size)


def crop(image: np.ndarray, det: Detection, spec: dict) -> np.ndarray:
    s = align_spec(spec)
    if s["style"] == "facenet":
        return facenet_crop(image, det.box, s["size"], s["margin"])
    return arcface_crop(image, det.landmarks, s["size"])


def write_crops(dataset, detections: pd.DataFrame, spec: dict, path, chunk_rows: int = 256, attrs=None) -> int:
    """Crop every image of ``detections`` (in its order) into an aligned store; returns the number of fallbacks.

    Store: ``images`` uint8 [image, size, size, 3], ``ids`` str, ``detected``
    bool; attributes ``style``, ``size``, ``margin``, ``fallbacks``, ``n``.
    """
    from . import stores as st

    s = align_spec(spec)
    n, size = len(detections), s["size"]
    with st.atomic_group(path) as g:
        ids = detections["id"].astype(str).to_numpy()
        g.create_array("ids", shape=(n,), dtype=str, dimension_names=["image"])[:] = np.asarray(ids, dtype=str)
        g.create_array("detected", data=detections["detected"].to_numpy(bool), dimension_names=["image"])
        arr = g.create_array("images", shape=(n, size, size, 3), chunks=(min(chunk_rows, max(n, 1)), size, size, 3),
                             dtype="uint8", compressors=st.compressor(),
                             dimension_names=["image", "height", "width", "channel"])
        for start, stop in st.sample_chunks(n, chunk_rows):
            block = [crop(dataset.image(i), detection_of(r), s) for i, (_, r) in
                     zip(ids[start:stop], detections.iloc[start:stop].iterrows())]
            arr[start:stop] = np.stack(block)
        fallbacks = int((~detections["detected"].to_numpy(bool)).sum())
        g.attrs.update({**s, "fallbacks": fallbacks, "n": n, "created": st.now(), **(attrs or {})})
    return fallbacks


class AlignedImages:
    """Reads crops of an aligned store by id, as a dataset does: float32 [batch, size, size, 3] in [0, 1]."""

    def __init__(self, path):
        from . import stores as st

        self.path = str(path)
        self.group = st.open_group(path, "aligned face store")
        self.index = {k: i for i, k in enumerate(st.as_str(self.group["ids"][:]).tolist())}

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    def images(self, ids) -> np.ndarray:
        try:
            rows = [self.index[i] for i in ids]
        except KeyError as e:
            raise AlignmentError(f"aligned store {self.path}: no crop of image {e.args[0]!r}") from None
        order = np.argsort(rows)
        out = np.empty((len(rows),) + self.group["images"].shape[1:], dtype=np.float32)
        out[order] = self.group["images"].get_orthogonal_selection((np.asarray(rows)[order],)) / 255.0
        return out


# -- networks -----------------------------------------------------------------------
class FrozenGraphNetwork(Network):
    """A TF1 frozen graph (``GraphDef`` ``.pb``) read through ``tf.compat.v1.wrap_function``.

    ``phase_train`` names a boolean tensor fed ``False`` (facenet's batch norm
    and dropout switch); pass None when the graph has none.
    """

    def __init__(self, name, graph, input="input:0", output="embeddings:0", phase_train="phase_train:0",
                 input_size=None, channels=None, input_range=FACENET_RANGE):
        tf = _tf()
        self.name, self.handle, self.classifier_handle, self.logits_layer = name, str(graph), None, None
        self.input_size = tuple(input_size) if input_size else None
        self.channels = channels
        self.input_range = tuple(float(v) for v in input_range)
        gd = tf.compat.v1.GraphDef()
        try:
            gd.ParseFromString(Path(graph).read_bytes())
        except Exception as e:  # missing file or not a GraphDef
            raise NetworkError(f"network {name!r}: cannot read a frozen graph from {graph}: {e}") from None
        wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(gd, name=""), [])
        g = wrapped.graph

        def tensor(t):
            try:
                return g.get_tensor_by_name(t)
            except (KeyError, ValueError):
                inputs = [op.name for op in g.get_operations() if op.type in ("Placeholder", "PlaceholderWithDefault")]
                raise NetworkError(f"network {name!r}: the graph {graph} has no tensor {t!r} "
                                   f"(its placeholders: {inputs})") from None

        feeds = [tensor(input)] + ([tensor(phase_train)] if phase_train else [])
        self._phase = bool(phase_train)
        self._fn = wrapped.prune(feeds, tensor(output))

    def features(self, images: np.ndarray) -> np.ndarray:
        tf = _tf()
        args = [self.preprocess(images)] + ([tf.constant(False)] if self._phase else [])
        f = self._fn(*args).numpy()
        if f.ndim != 2:
            raise NetworkError(f"network {self.name!r}: output of shape {f.shape}; expected [batch, feature]")
        return f.astype(np.float32)


BACKBONES = ("ResNet50", "MobileNetV2")


def arcface_model(backbone: str = "ResNet50", size: int = 112, embedding: int = 512):
    """arcface-tf2's ``ArcFaceModel(training=False)``: backbone, then its OutputLayer, as nested Keras models."""
    k = _keras()
    if backbone not in BACKBONES:
        raise NetworkError(f"arcface backbone {backbone!r}: use one of {BACKBONES}")
    inputs = k.Input([size, size, 3], name="input_image")
    app = getattr(k.applications, backbone)
    x = app(input_shape=(size, size, 3), include_top=False, weights=None)(inputs)
    head_in = k.Input(x.shape[1:])
    y = k.layers.BatchNormalization()(head_in)
    y = k.layers.Dropout(rate=0.5)(y)
    y = k.layers.Flatten()(y)
    y = k.layers.Dense(embedding, kernel_regularizer=k.regularizers.l2(5e-4))(y)
    y = k.layers.BatchNormalization()(y)
    embds = k.Model(head_in, y, name="OutputLayer")(x)
    return k.Model(inputs, embds, name="arcface_model")


class ArcFaceNetwork(Network):
    """An arcface-tf2 network restored from its checkpoint (a prefix, or a directory with a ``checkpoint`` file)."""

    def __init__(self, name, checkpoint, backbone="ResNet50", input_size=(112, 112), embedding=512,
                 input_range=(0.0, 1.0)):
        tf = _tf()
        self.name, self.handle, self.classifier_handle, self.logits_layer = name, str(checkpoint), None, None
        self.input_size = tuple(input_size)
        self.channels = 3
        self.input_range = tuple(float(v) for v in input_range)
        prefix = tf.train.latest_checkpoint(str(checkpoint)) if Path(checkpoint).is_dir() else str(checkpoint)
        if not prefix or not Path(f"{prefix}.index").exists():
            raise NetworkError(f"network {name!r}: no checkpoint at {checkpoint} (expected PREFIX.index or a "
                               "directory with a 'checkpoint' file)")
        self.model = arcface_model(backbone, self.input_size[0], embedding)
        try:
            self.model.load_weights(prefix).expect_partial()
        except Exception as e:  # tf raises many kinds
            raise NetworkError(f"network {name!r}: checkpoint {prefix} does not fit arcface {backbone}: {e}") from e

    def features(self, images: np.ndarray) -> np.ndarray:
        return self.model(self.preprocess(images), training=False).numpy().astype(np.float32)


SOURCES = ("frozen_graph", "arcface")


def open_face_network(name: str, spec: dict) -> Network:
    """The network of a ``source: frozen_graph`` or ``source: arcface`` config entry."""
    if spec["source"] == "frozen_graph":
        return FrozenGraphNetwork(name, spec["graph"], spec.get("input", "input:0"), spec.get("output", "embeddings:0"),
                                  spec.get("phase_train", "phase_train:0"), spec.get("input_size", (160, 160)),
                                  spec.get("channels"), spec.get("input_range", FACENET_RANGE))
    if spec["source"] == "arcface":
        size = spec.get("input_size", (112, 112))
        return ArcFaceNetwork(name, spec["checkpoint"], spec.get("backbone", "ResNet50"), size,
                              int(spec.get("embedding", 512)), spec.get("input_range", (0.0, 1.0)))
    raise NetworkError(f"network {name!r}: source {spec['source']!r} is not a face network")
