"""What tests share: the repository's root, synthetic embeddings and stores, and a Snakemake runner.

Plain functions and constants only (fixtures and hooks are in conftest.py). Every test module, in any
folder under tests/, imports them with ``from helpers import ...``: pytest puts tests/ on sys.path for
conftest.py, and conftest.py puts workflow/ there, so ``embmap`` is imported inside the functions.
"""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
import zarr

ROOT = Path(__file__).resolve().parents[1]


# -- embeddings and stores ----------------------------------------------------------
def latent_embeddings(n=600, dims=(12, 9, 7), k=5, noise=0.1, offset=0.0, seed=0):
    """Features of several 'networks' that share a k-dimensional latent code, float32."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k))
    out = []
    for d in dims:
        a = rng.standard_normal((k, d))
        out.append((z @ a + noise * rng.standard_normal((n, d)) + offset).astype(np.float32))
    return z, out


def synthetic_stores(root, names=("net_a", "net_b", "net_c"), dims=(12, 10, 12), n_train=400, n_test=200,
                     n_classes=4, seed=0, random_control=None):
    """Bring-your-own stores: ``root/<name>/{train,test}.zarr`` with a fitted linear classifier each.

    The networks share a latent code that decides the class, so maps between
    them work; ``random_control`` names a network whose features ignore the code.
    Returns {name: directory}.
    """
    from sklearn.linear_model import LogisticRegression

    from embmap import stores

    rng = np.random.default_rng(seed)
    n = n_train + n_test
    z = rng.standard_normal((n, 6))
    labels = np.argmax(z[:, :n_classes] + 0.3 * rng.standard_normal((n, n_classes)), axis=1)
    ids = np.array([f"img/{i:05d}.png" for i in range(n)])
    out = {}
    for name, d in zip(names, dims):
        if name == random_control:
            f = rng.standard_normal((n, d))
        else:
            f = np.tanh(z @ rng.standard_normal((6, d))) + 0.05 * rng.standard_normal((n, d))
        f = f.astype(np.float32)
        clf = LogisticRegression(max_iter=2000).fit(f[:n_train], labels[:n_train])
        w, b = clf.coef_, clf.intercept_
        if name == random_control:
            w, b = rng.standard_normal(w.shape), np.zeros(n_classes)
        for split, sl in (("train", slice(0, n_train)), ("test", slice(n_train, n))):
            stores.write_embeddings(f"{root}/{name}/{split}.zarr", f[sl], ids[sl], labels[sl], classifier=(w, b),
                                    chunk_rows=64, network=name, source="zarr", split=split)
        out[name] = f"{root}/{name}"
    return out


def linear_stores(root, n_train=400, n_test=300, n_classes=4, seed=0):
    """Stores of three networks with an exact linear relation: ``a`` [8 dims], ``b = a R`` (R invertible: maps both
    ways are exact) and ``c = a P`` (P orthonormal columns, 8 -> 4: a -> c exact, c -> a loses what P drops, and
    with it accuracy, since the labels depend on all of a). Each has its own fitted classifier (c's 4 x 4 has full
    column rank). Returns ({name: directory}, {name: (train float64, test float64)}, labels of the test split)."""
    from sklearn.linear_model import LogisticRegression

    from embmap import stores

    rng = np.random.default_rng(seed)
    n = n_train + n_test
    fa = rng.standard_normal((n, 8))
    labels = np.argmax(fa @ rng.standard_normal((8, n_classes)) + 0.3 * rng.standard_normal((n, n_classes)), axis=1)
    r = rng.standard_normal((8, 8)) + 2.0 * np.eye(8)
    p = np.linalg.qr(rng.standard_normal((8, 8)))[0][:, :4]
    ids = np.array([f"img/{i:05d}.png" for i in range(n)])
    dirs, feats = {}, {}
    for name, f in (("a", fa), ("b", fa @ r), ("c", fa @ p)):
        f = f.astype(np.float32)
        clf = LogisticRegression(max_iter=5000).fit(f[:n_train], labels[:n_train])
        for split, sl in (("train", slice(0, n_train)), ("test", slice(n_train, n))):
            stores.write_embeddings(f"{root}/{name}/{split}.zarr", f[sl], ids[sl], labels[sl],
                                    classifier=(clf.coef_, clf.intercept_), chunk_rows=64, network=name,
                                    source="zarr", split=split)
        dirs[name] = f"{root}/{name}"
        feats[name] = (f[:n_train].astype(np.float64), f[n_train:].astype(np.float64))
    return dirs, feats, labels[n_train:]


def layered_stores(root, n_train=500, n_test=400, n_classes=4, seed=0, eval_layers=None):
    """Bring-your-own stores of two networks with layers whose relations are known. A latent code ``z`` [6] decides
    the class. Network ``a``: layer ``early`` = ``z Ra`` (8 dims, exact: every linear function of z is one of it),
    layer ``mid/relu`` = a noisy, clipped view of z (5 dims), embedding = ``z Wa`` (7 dims). Network ``b``: layer
    ``conv1`` = pure noise (4 dims: carries nothing), embedding = ``z Wb`` (6 dims). Classifiers read z exactly
    (``weight = (pinv(W) C)^T``), so each network predicts the labels it was made from. ``eval_layers`` (a dict
    name -> layers) replaces a network's layers in the test split (stores that disagree). Returns ({name:
    directory}, {name: {layer: (train float64, test float64)}} with ``embedding`` for the embedding, test labels)."""
    from embmap import stores

    rng = np.random.default_rng(seed)
    n = n_train + n_test
    z = rng.standard_normal((n, 6))
    c = rng.standard_normal((6, n_classes))
    labels = np.argmax(z @ c, axis=1)
    ids = np.array([f"img/{i:05d}.png" for i in range(n)])
    wa, wb = rng.standard_normal((6, 7)), rng.standard_normal((6, 6)) + 2 * np.eye(6)
    nets = {"a": (z @ wa, wa, {"early": z @ rng.standard_normal((6, 8)),
                               "mid/relu": np.clip(z[:, :5] + 0.8 * rng.standard_normal((n, 5)), 0, None)}),
            "b": (z @ wb, wb, {"conv1": rng.standard_normal((n, 4))})}
    dirs, feats = {}, {}
    for name, (emb, w, layers) in nets.items():
        weight = (np.linalg.pinv(w) @ c).T
        emb = emb.astype(np.float32)
        layers = {k: v.astype(np.float32) for k, v in layers.items()}
        for split, sl in (("train", slice(0, n_train)), ("test", slice(n_train, n))):
            mine = layers if split == "train" or name not in (eval_layers or {}) else eval_layers[name]
            stores.write_embeddings(f"{root}/{name}/{split}.zarr", emb[sl], ids[sl], labels[sl],
                                    classifier=(weight, np.zeros(n_classes)), chunk_rows=64, network=name,
                                    source="zarr", split=split, layers={k: v[sl] for k, v in mine.items()})
        dirs[name] = f"{root}/{name}"
        feats[name] = {k: (v[:n_train].astype(np.float64), v[n_train:].astype(np.float64))
                       for k, v in {**layers, "embedding": emb}.items()}
    return dirs, feats, labels[n_train:]


def linear_experiment(root, methods=("ridge", "lstsq")):
    """:func:`linear_stores` opened as the closed-set analyses take them: (evaluation stores, {method: {(source,
    target): map}} fitted on the train split from its blocks, {name: test features float64}, test labels)."""
    from embmap import stores
    from embmap.fit import gram
    from embmap.fit import methods as fit_methods

    dirs, feats, labels = linear_stores(root)
    fit = stores.open_matched({k: f"{d}/train.zarr" for k, d in dirs.items()})
    ev = stores.open_matched({k: f"{d}/test.zarr" for k, d in dirs.items()}, need_classifier=True)
    bl = gram.cross_products({k: s.embeddings for k, s in fit.items()}, block_rows=64)
    maps = {m: {(a, b): f for a in bl.names
                for b, f in fit_methods.fit_maps(bl, a, [t for t in bl.names if t != a], m, alpha=1.0).items()}
            for m in methods}
    return ev, maps, {k: v[1] for k, v in feats.items()}, labels


def classified_right(features, store, labels):
    """bool [n]: where a store's classifier, reading ``features`` [n, d] (float64), predicts ``labels``."""
    w, b = store.classifier()
    return np.argmax(features @ w.T + b, axis=1) == labels


def raw_store(path, emb, ids, labels, classifier=None, attrs=None, *, zarr_format=3, consolidate=True,
              classifier_attrs=None):
    """A store as any Zarr user writes it; ``attrs`` default to ``complete: true``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
        g.create_array("embeddings", data=np.asarray(emb))
        a = g.create_array("ids", shape=(len(ids),), dtype=str) if np.asarray(ids).dtype.kind in "UO" else None
        if a is not None:
            a[:] = np.asarray(ids, dtype=str)
        else:
            g.create_array("ids", data=np.asarray(ids))
        g.create_array("labels", data=np.asarray(labels))
        if classifier is not None:
            c = g.create_group("classifier")
            c.create_array("weight", data=np.asarray(classifier[0]))
            c.create_array("bias", data=np.asarray(classifier[1]))
            c.attrs.update(classifier_attrs or {})
        g.attrs.update({"complete": True} if attrs is None else attrs)
        if consolidate:
            zarr.consolidate_metadata(str(path))
    return path


# -- faces and pairs ---------------------------------------------------------------
def face_embeddings(n_id=40, per_id=4, dims=(16, 16, 12), noise=0.35, seed=0, random=()):
    """Unit-norm 'face embeddings': every network sees one identity code through its own linear map.

    Returns ids ``Person_007/Person_007_0002.jpg`` (sorted) and {network: float32 [n, d]}; networks whose
    index is in ``random`` ignore the identity.
    """
    from embmap.data import pairs as pf

    rng = np.random.default_rng(seed)
    k = 8
    code = rng.standard_normal((n_id, k))
    ids, who = [], []
    for p in range(n_id):
        for j in range(per_id):
            ids.append(pf.image_path(f"Person_{p:03d}", j + 1))
            who.append(p)
    who = np.array(who)
    z = code[who] + noise * rng.standard_normal((len(who), k))
    out = {}
    for i, d in enumerate(dims):
        f = rng.standard_normal((len(who), d)) if i in random else np.tanh(z @ rng.standard_normal((k, d)))
        f += 0.05 * rng.standard_normal(f.shape)
        out[f"net{i}"] = (f / np.linalg.norm(f, axis=1, keepdims=True)).astype(np.float32)
    return np.array(ids), out


def pairs_among(ids, n_folds=4, per_fold=15, seed=1):
    from embmap.data import pairs as pf

    who = pf.identities_of(ids)
    counts = pd.Series(who).value_counts().to_dict()
    return pf.make_pairs(counts, n_folds, per_fold, seed)


def fabricated_lfw(root, people=(("Ann_Lee", 3), ("Bob_Ray", 2), ("Cy", 2)), size=(250, 250)):
    """An LFW tree of JPEGs drawn here: a grey disc on a coloured background per person."""
    from PIL import Image, ImageDraw

    for k, (name, n) in enumerate(people):
        (root / name).mkdir(parents=True, exist_ok=True)
        for j in range(1, n + 1):
            im = Image.new("RGB", size, (40 * k, 100, 200 - 30 * j))
            ImageDraw.Draw(im).ellipse((60, 50, 190, 200), fill=(180, 150, 130))
            im.save(root / name / f"{name}_{j:04d}.jpg", quality=95)
    return root


# -- networks and the workflow -----------------------------------------------------
def train_demo(spec, images, labels, n_classes, out_dir, **kw):
    """Train a demo network from a partial ``train:`` block (the schema fills the rest)."""
    from embmap import config
    from embmap.models import demo

    t = config.defaults("train", spec)
    return demo.train(t["architecture"], t["width"], t["epochs"], t["seed"], t["batch_size"], t["learning_rate"],
                      images, labels, n_classes, out_dir, **kw)


def snakemake(workdir, config, *args, check=True, **run):
    """Run the workflow on ``config`` in ``workdir``; ``run`` goes to subprocess.run (env, timeout)."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, **run)
    if check and r.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}")
    return r


def byo_config(dirs, **exp):
    return {"experiments": {"byo": {"task": "closed_set", "dataset": {"kind": "embeddings"}, "fit_split": "train",
                                    "eval_split": "test", "mapping": {"alpha": 1.0},
                                    "networks": {k: {"source": "zarr", "path": str(d)} for k, d in dirs.items()},
                                    **exp}}}
