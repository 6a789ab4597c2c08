"""Face networks and face alignment for the open-set task (paper section 4).

Alignment (MTCNN from the ``mtcnn`` package, whose weights ship in its wheel):

- detections are computed once per dataset (:func:`detect`: box and five
  landmarks of one face per image, chosen as facenet's
  ``align_dataset_mtcnn.py`` chooses, :func:`choose_face`) and cached as a
  table;
- ``facenet`` style, as facenet's ``align_dataset_mtcnn.py`` crops: the box
  grown by ``margin / 2`` pixels on each side, clipped to the image, resized
  (bilinear) to ``size`` x ``size`` without keeping the aspect (facenet's
  LFW evaluation: 160, margin 32);
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

The face networks themselves are sources: :mod:`embmap.models.frozen_graph`
and :mod:`embmap.models.arcface`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import config

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # left = smaller x in the image
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                             [70.7299, 92.2041]])  # for 112 x 112 crops
STYLES = ("facenet", "arcface")
DETECTION_COLUMNS = ["id", "detected", "confidence", "height", "width", "x", "y", "w", "h"] + [
    f"{k}_{c}" for k in LANDMARKS for c in "xy"]


class AlignmentError(ValueError):
    pass


# -- alignment specs ----------------------------------------------------------------
def align_spec(spec: dict) -> dict:
    """An ``align`` block completed with the schema's defaults (facenet: 160 px, margin 32; arcface: 112 px)."""
    if spec.get("style") not in STYLES:
        raise AlignmentError(f"align.style: {spec.get('style')!r}; use one of {STYLES}")
    spec = config.defaults("align", spec)
    return {"style": spec["style"], "size": int(spec["size"]), "margin": int(spec.get("margin", 0))}


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


def choose_face(faces: list[dict], image_shape) -> dict | None:
    """The face facenet's ``align_dataset_mtcnn.py`` keeps among ``mtcnn`` results, or None.

    With several faces, the one with the largest box area minus twice the
    squared distance of the box centre from the image centre (in pixels).
    """
    if not faces:
        return None
    h, w = image_shape[:2]

    def score(face):
        x, y, bw, bh = (float(v) for v in face["box"])
        return bw * bh - 2.0 * ((x + bw / 2 - w / 2) ** 2 + (y + bh / 2 - h / 2) ** 2)

    return max(faces, key=score)


def detect(images, detector=None) -> list[dict | None]:
    """One face of each uint8 RGB image (``mtcnn.MTCNN`` results, :func:`choose_face`), None where there is none."""
    if detector is None:
        from mtcnn import MTCNN

        detector = MTCNN()
    return [choose_face(detector.detect_faces(np.asarray(im)), np.shape(im)) for im in images]


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
    """Apply the 2x3 map ``m`` (image -> crop pixel indices) to get a size x size crop; outside is black.

    ``m`` works on pixel indices (pixel centres at integers, as OpenCV's
    ``warpAffine`` and the reference alignments); PIL's coordinates put pixel
    centres at +0.5, so with c = A p + t on indices, c + h = A (p + h) + t - A h + h
    for h = (0.5, 0.5).
    """
    from PIL import Image

    a = m[:, :2]
    h = np.array([0.5, 0.5])
    t = m[:, 2] - a @ h + h  # the same map in PIL's continuous coordinates
    inv = np.linalg.inv(a)
    coeffs = np.hstack([inv, (-inv @ t)[:, None]]).ravel()  # crop (x, y) -> image (x, y)
    im = Image.fromarray(np.asarray(image, np.uint8))
    out = im.transform((size, size), Image.Transform.AFFINE, data=tuple(coeffs), resample=Image.Resampling.BILINEAR)
    return np.asarray(out)


def facenet_box(box, image_shape, margin: int = 32) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of facenet's crop: the box grown by ``margin / 2`` on each side, clipped.

    As ``align_dataset_mtcnn.py``: the bounds are stored in an int32 array,
    which truncates them (they are never negative after the clipping).
    """
    x, y, w, h = (float(v) for v in box)
    height, width = image_shape[:2]
    left, top = max(x - margin / 2, 0.0), max(y - margin / 2, 0.0)
    right, bottom = min(x + w + margin / 2, float(width)), min(y + h + margin / 2, float(height))
    return int(left), int(top), int(right), int(bottom)


def facenet_crop(image: np.ndarray, box, size: int = 160, margin: int = 32) -> np.ndarray:
    """facenet's aligned face: :func:`facenet_box` of the image resized to ``size`` x ``size``, bilinear.

    The resize is PIL's bilinear ``resize`` (what ``scipy.misc.imresize(...,
    interp='bilinear')`` called in facenet's alignment script); the aspect is
    not kept.
    """
    from PIL import Image

    left, top, right, bottom = facenet_box(box, np.shape(image), margin)
    if right <= left or bottom <= top:
        raise AlignmentError(f"face box {list(box)} lies outside the {np.shape(image)[1]} x {np.shape(image)[0]} image")
    patch = Image.fromarray(np.ascontiguousarray(np.asarray(image, np.uint8)[top:bottom, left:right]))
    return np.asarray(patch.resize((size, size), Image.Resampling.BILINEAR))


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
    from .. import stores as st

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
        g.update_attributes({**s, "fallbacks": fallbacks, "n": n, "created": st.now(), **(attrs or {})})
    return fallbacks


class AlignedImages:
    """Reads crops of an aligned store by id, as a dataset does: float32 [batch, size, size, 3] in [0, 1]."""

    def __init__(self, path):
        from .. import stores as st

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
