"""Resumable extraction: a writer killed with SIGKILL at any moment, re-run, gives the uninterrupted store.

Each kill runs in a child process that injects SIGKILL at one point of the
write path; the parent then runs the writer again to the end and compares
values, ids and labels with an uninterrupted run.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import zarr

from embmap import stores
from helpers import ROOT, train_demo

N, D, CHUNK, BATCH = 230, 6, 32, 16

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {workflow!r})
    import numpy as np
    import zarr.storage._local as local
    from embmap import stores

    N, D, CHUNK, BATCH = {N}, {D}, {CHUNK}, {BATCH}
    mode, at = {mode!r}, {at}
    ids = np.array([f"img/{{i:04d}}.png" for i in range(N)])
    labels = np.arange(N) % 7

    def features(rows):
        i = np.asarray(rows, dtype=np.float64)[:, None]
        return (np.sin(i * np.arange(1, D + 1)) * 10 + i / 100).astype(np.float32)

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "before_progress":          # chunk on disk, not yet counted
        real = stores.ResumableStore._write_progress
        def patched(self, rows):
            if rows >= at:
                die()
            real(self, rows)
        stores.ResumableStore._write_progress = patched
    elif mode == "torn_chunk":             # half a chunk file at its final path, as on a non-atomic file system
        real_put = local._put
        count = [0]
        def put(path, value, exclusive=False):
            if "embeddings/c/" in str(path):
                count[0] += 1
                if count[0] == at:
                    data = bytes(value.as_buffer_like())
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with open(path, "wb") as f:
                        f.write(data[: len(data) // 2])
                    die()
            return real_put(path, value, exclusive)
        local._put = put
    elif mode == "before_rename":          # complete and consolidated, not yet moved into place
        real_replace = os.replace
        def replace(a, b):
            if str(a).endswith(".zarr.partial"):
                die()
            return real_replace(a, b)
        os.replace = replace

    store = stores.ResumableStore({path!r}, ids, labels, {{"spec": "demo"}}, chunk_rows=CHUNK, batch_size=BATCH)
    print("start", store.start, flush=True)
    for s in range(store.start, N, BATCH):
        rows = range(s, min(N, s + BATCH))
        if mode == "mid_batch" and s >= at:
            die()
        store.append(features(rows))
    store.finish({{"network": "demo"}})
    """
)


def run_child(path, mode="none", at=0):
    code = CHILD.format(workflow=str(ROOT / "workflow"), N=N, D=D, CHUNK=CHUNK, BATCH=BATCH, mode=mode, at=at,
                        path=str(path))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.zarr"
    r = run_child(path)
    assert r.returncode == 0, r.stderr
    return stores.open_embeddings(path)


def assert_same_store(path, ref):
    s = stores.open_embeddings(path)
    np.testing.assert_array_equal(s.embeddings[:], ref.embeddings[:])
    np.testing.assert_array_equal(s.ids, ref.ids)
    np.testing.assert_array_equal(s.labels, ref.labels)
    assert not (path.parent / (path.name + ".partial")).exists()
    assert "progress.json" not in [p.name for p in path.iterdir()]


@pytest.mark.parametrize(
    "mode, at, resumes_at",
    [
        ("mid_batch", 0, 0),               # killed before any chunk was written: starts again
        ("mid_batch", 100, 96),            # killed between batches: resumes at the last chunk on disk (3 x 32)
        ("before_progress", 128, 96),      # chunk 4 written but not counted: it is written again
        ("torn_chunk", 3, 64),             # chunk 3 torn on disk, never counted: rewritten
        ("before_rename", 0, 224),         # whole but not moved into place: only the tail is redone
    ],
)
def test_sigkill_then_rerun_gives_the_uninterrupted_store(tmp_path, reference, mode, at, resumes_at):
    path = tmp_path / "s.zarr"
    killed = run_child(path, mode, at)
    assert killed.returncode == -9, killed.stderr
    assert not path.exists(), "a killed writer must not leave a store at the final path"
    partial = tmp_path / "s.zarr.partial"
    assert partial.exists()
    with pytest.raises(stores.StoreError, match="not a Zarr store|incomplete"):
        stores.open_embeddings(partial)
    again = run_child(path)
    assert again.returncode == 0, again.stderr
    assert f"start {resumes_at}\n" in again.stdout
    assert_same_store(path, reference)


def test_a_changed_fingerprint_starts_afresh(tmp_path):
    path = tmp_path / "s.zarr"
    ids, labels = np.array(["a", "b", "c", "d"]), np.zeros(4)
    s = stores.ResumableStore(path, ids, labels, {"spec": 1}, chunk_rows=2)
    s.append(np.ones((2, 3), np.float32))  # one chunk durable, then "crash"
    assert stores.ResumableStore(path, ids, labels, {"spec": 1}, chunk_rows=2).start == 2
    assert stores.ResumableStore(path, ids, labels, {"spec": 2}, chunk_rows=2).start == 0
    s = stores.ResumableStore(path, ids, labels, {"spec": 1}, chunk_rows=2)
    assert s.start == 0, "the fresh start for spec 2 replaced the old partial store"


def test_resume_point_respects_batch_boundaries(tmp_path):
    path = tmp_path / "s.zarr"
    ids, labels = np.array([str(i) for i in range(40)]), np.zeros(40)
    s = stores.ResumableStore(path, ids, labels, {}, chunk_rows=4, batch_size=6)
    s.append(np.ones((18, 2), np.float32))  # 16 rows durable (4 chunks), 2 buffered
    again = stores.ResumableStore(path, ids, labels, {}, chunk_rows=4, batch_size=6)
    assert again.resumed_rows == 16 and again.start == 12  # lcm(4, 6) = 12
    g = zarr.open_group(str(tmp_path / "s.zarr.partial"), mode="r")
    assert not g.attrs.get("complete", False)


EXTRACT_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {workflow!r})
    from embmap import data, models, stores
    from embmap.extract import extract as extract_store

    real = stores.ResumableStore._write_progress
    def patched(self, rows):
        if rows >= {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)
        real(self, rows)
    stores.ResumableStore._write_progress = patched
    ds = data.get({{"kind": "digits", "seed": 0}})
    m = ds.manifest()
    rows = m[m.split == "test"].iloc[:150]
    net = models.open_model("mlp", {{"source": "train"}}, model_dir={model!r})
    extract_store(net, ds, rows.id.to_numpy(), rows.label.to_numpy(), {path!r}, chunk_rows=32, batch_size=16,
                     progress=False)
    """
)


@pytest.mark.tensorflow
def test_real_extraction_killed_mid_run_resumes_to_identical_store(tmp_path):
    from embmap import data, models
    from embmap.extract import extract as extract_store

    ds = data.get({"kind": "digits", "seed": 0})
    m = ds.manifest()
    train = m[m.split == "train"].iloc[:200]
    train_demo({"architecture": "mlp", "width": 12, "epochs": 1, "seed": 3}, ds.images(list(train.id)),
                   train.label.to_numpy(), 10, tmp_path / "mlp", log=lambda *_: None)
    rows = m[m.split == "test"].iloc[:150]
    net = models.open_model("mlp", {"source": "train"}, model_dir=str(tmp_path / "mlp"))

    def run(path):
        extract_store(net, ds, rows.id.to_numpy(), rows.label.to_numpy(), path, chunk_rows=32, batch_size=16,
                         progress=False)

    run(tmp_path / "ref.zarr")
    code = EXTRACT_CHILD.format(workflow=str(ROOT / "workflow"), kill_at=96, model=str(tmp_path / "mlp"),
                                path=str(tmp_path / "s.zarr"))
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "s.zarr").exists()
    messages = []
    extract_store(net, ds, rows.id.to_numpy(), rows.label.to_numpy(), tmp_path / "s.zarr", chunk_rows=32,
                     batch_size=16, progress=False, log=messages.append)
    assert messages and "at row 64 of 150" in messages[0]
    ref, got = stores.open_embeddings(tmp_path / "ref.zarr"), stores.open_embeddings(tmp_path / "s.zarr")
    np.testing.assert_array_equal(got.embeddings[:], ref.embeddings[:])
    np.testing.assert_array_equal(got.ids, ref.ids)
    np.testing.assert_array_equal(got.classifier()[0], ref.classifier()[0])


def test_a_model_file_that_changes_changes_the_fingerprint(tmp_path):
    """keras, tflite and onnx networks are single files: new weights under the same name must not resume."""
    import os

    from embmap.extract import model_fingerprint

    f = tmp_path / "m.onnx"
    f.write_bytes(b"weights one")
    before = model_fingerprint(str(f))
    assert before["files"][0][:2] == ["m.onnx", 11]
    f.write_bytes(b"weights two!")
    os.utime(f, ns=(1, 1))
    assert model_fingerprint(str(f)) != before
