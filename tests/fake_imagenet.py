"""A fabricated ILSVRC2012-like tree: a few tiny JPEGs, both val layouts, devkit files."""

from pathlib import Path

import numpy as np

# Five synsets. Their WNID order (the models' labels 1..5) differs from the devkit's ILSVRC2012_ID order.
WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475"]
DEVKIT_ORDER = ["n01494475", "n01440764", "n01491361", "n01443537", "n01484850"]  # devkit ids 1..5
VAL_WNIDS = ["n01491361", "n01440764", "n01494475", "n01443537", "n01484850",
             "n01440764", "n01491361", "n01484850", "n01494475", "n01443537"]  # val image i -> class


def jpeg(path, rng, size=(40, 52), color=(0, 0, 0), mode="RGB"):
    from PIL import Image

    h, w = size
    x = np.clip(rng.normal(128, 40, (h, w, 3)) + np.asarray(color) - 60, 0, 255).astype(np.uint8)
    img = Image.fromarray(x)
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=90)


def write_meta_mat(path, order=DEVKIT_ORDER):
    """The devkit's data/meta.mat: a 'synsets' struct array, leaves first (ids 1..k), then an inner node."""
    from scipy.io import savemat

    rows = [(i + 1, w, f"class {w}", 0) for i, w in enumerate(order)] + [(1001, "n00001740", "entity", 5)]
    arr = np.zeros((len(rows),), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"),
                                        ("num_children", "O")])
    for k, r in enumerate(rows):
        arr[k] = r
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"synsets": arr})


def color_of(wnid):
    k = WNIDS.index(wnid)
    return (k * 50 % 256, 255 - k * 40, (k * 90) % 256)


def fake_imagenet(root, per_class=3, val_layout="flat", seed=0, devkit=True, synsets_file=True):
    """Build ``root`` as ILSVRC2012: train/<wnid>/*.JPEG, val/ (``flat`` or ``folders``), devkit, synset list.

    Returns the root as a Path.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for w in WNIDS:
        for j in range(per_class):
            size = (36 + 4 * j, 48 - 2 * j)
            jpeg(root / "train" / w / f"{w}_{j + 1}.JPEG", rng, size, color_of(w), mode="L" if j == 2 else "RGB")
    for i, w in enumerate(VAL_WNIDS, 1):
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        target = root / "val" / (w if val_layout == "folders" else "") / name
        jpeg(target, rng, (44, 40), color_of(w))
    if devkit:
        data = root / "ILSVRC2012_devkit_t12" / "data"
        write_meta_mat(data / "meta.mat")
        ids = [DEVKIT_ORDER.index(w) + 1 for w in VAL_WNIDS]
        (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{k}\n" for k in ids))
    if synsets_file:
        (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} class {w}\n" for w in sorted(WNIDS)))
    return root


def write_loc_solution(path, wnids=VAL_WNIDS):
    lines = ["ImageId,PredictionString"] + [f"ILSVRC2012_val_{i:08d},{w} 1 2 30 40 {w} 3 4 20 30"
                                            for i, w in enumerate(wnids, 1)]
    Path(path).write_text("\n".join(lines) + "\n")
