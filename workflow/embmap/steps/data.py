"""Steps of ``workflow/rules/data.smk``: the manifest, the pairs file, face detection and alignment."""

from __future__ import annotations

import os
from pathlib import Path

from . import log, step, tf_threads


def _prepare_split_inputs(plan, wc) -> dict:
    exp = plan.experiments[wc.exp]
    return {"pairs": plan.pairs_file(wc.exp)} if exp.kind.pairs == "written" else {}


def _dataset_job(plan, wc) -> dict:
    """``dataset``: the experiment's dataset block."""
    return {"dataset": plan.experiments[wc.exp].dataset}


@step(inputs=_prepare_split_inputs, job=_dataset_job)
def prepare_split(dataset: dict, manifest: str, pairs: str | None = None) -> None:
    """The manifest of the experiment's images (``pairs``: the written pairs file it lists, if any)."""
    from ..data.manifest import write_manifest

    m = write_manifest(dataset, manifest, log=log.warning)
    log.info("manifest %s: %d images, splits %s", manifest, len(m), m["split"].value_counts().to_dict())


@step(job=_dataset_job)
def write_pairs(dataset: dict, pairs: str) -> None:
    from .. import data

    data.get(dataset).write_pairs(pairs)
    log.info("wrote %s", pairs)


@step(job=_dataset_job)
def detect_faces(dataset: dict, manifest: str, faces: str, threads: int = 1) -> None:
    """MTCNN over every image of the pairs split: one face's box and landmarks (facenet's choice), one row each."""
    import pandas as pd

    from .. import data
    from ..data import faces as fc
    from ..data.manifest import read_manifest
    from ..plan import PAIRS_SPLIT

    tf_threads(threads)
    ds = data.get(dataset)
    ids = read_manifest(manifest, PAIRS_SPLIT)["id"].tolist()
    from mtcnn import MTCNN

    detector = MTCNN()
    rows = []
    for i, id_ in enumerate(ids):
        img = ds.image(id_)
        rows.append(fc.detection_row(id_, img.shape, fc.detect([img], detector)[0]))
        if (i + 1) % 500 == 0:
            log.info("%d of %d images", i + 1, len(ids))
    t = pd.DataFrame(rows, columns=fc.DETECTION_COLUMNS)
    tmp = f"{faces}.partial"
    Path(faces).parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(tmp, index=False, float_format="%.3f")
    os.replace(tmp, faces)
    log.info("faces found in %d of %d images; the others fall back to a centre crop", t.detected.sum(), len(t))


@step(job=_dataset_job)
def align_faces(dataset: dict, faces: str, align: str, aligned: str) -> None:
    import pandas as pd

    from .. import data
    from ..data import faces as fc

    spec = fc.parse_align_key(align)
    t = pd.read_csv(faces, dtype={"id": str})
    n = fc.write_crops(data.get(dataset), t, spec, aligned, attrs={"detections": faces})
    log.info("wrote %s: %d crops, %d centre-crop fallbacks", aligned, len(t), n)


__all__ = ['align_faces', 'detect_faces', 'prepare_split', 'write_pairs']
