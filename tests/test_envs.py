"""envs/*.yaml pin the same versions as pyproject.toml, so --use-conda runs what the tests ran."""

import re
import tomllib

import yaml

from helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins(reqs):
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9.]+)\.\*", r)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def _env(name):
    env = yaml.safe_load((ROOT / "envs" / name).read_text())
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip.update(_pins(dep["pip"]))
        elif "=" in dep:
            k, v = dep.split("=", 1)
            conda[k.lower()] = v
    return env, conda, pip


def test_core_dependencies_pinned_alike_in_both_envs():
    core = _pins(PYPROJECT["project"]["dependencies"])
    assert core, "pyproject pins its dependencies as ==X.Y.*"
    for name in ("analysis.yaml", "tensorflow.yaml"):
        env, conda, _ = _env(name)
        assert env["channels"][0] == "conda-forge"
        assert conda.pop("python") == "3.11"
        # the analysis env runs the pass, so it carries the dask extra (distributed schedulers) too
        extra = _pins(PYPROJECT["project"]["optional-dependencies"]["dask"]) if name == "analysis.yaml" else {}
        assert conda == core | extra, f"envs/{name} drifted from pyproject.toml"


def test_tensorflow_env_pins_the_tensorflow_and_onnx_extras():
    _, _, pip = _env("tensorflow.yaml")
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert pip == _pins(extras["tensorflow"]) | _pins(extras["onnx"])


def test_the_real_tier_pins_its_weight_packages_as_its_assets_expect():
    from real_assets import INSTALLED

    real = PYPROJECT["project"]["optional-dependencies"]["real"]
    for dist, version, _ in INSTALLED.values():
        assert f"{dist}=={version}" in real, f"{dist}: tests/real_assets.py and the real extra disagree"


def test_every_rule_names_an_existing_env_and_a_log():
    text = "\n".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    rules = re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", text, flags=re.M)
    assert len(rules) >= 7
    for name, body in rules:
        assert "    log:" in body, f"rule {name} has no log:"
        env = re.search(r'conda:\n\s+"\.\./\.\./envs/([\w.]+)"', body)
        assert env and (ROOT / "envs" / env.group(1)).exists(), f"rule {name}: conda env missing"


def test_a_built_wheel_holds_every_subpackage(tmp_path):
    """`pip install .` (not only the editable install) gets data/, models/, fit/ and evaluate/."""
    import subprocess
    import sys
    import zipfile

    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    names = zipfile.ZipFile(next(tmp_path.glob("embmap-*.whl"))).namelist()
    for module in ("embmap/plan.py", "embmap/data/manifest.py", "embmap/models/base.py", "embmap/fit/gram.py",
                   "embmap/evaluate/closed_set.py"):
        assert module in names, module
