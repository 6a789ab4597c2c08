"""The digits workflow through profiles/slurm on a real SLURM cluster (tests/workflow/localslurm.py).

The test node has the machine's CPUs and two GPUs in name only, so the test runs the shipped
profile with its CPU counts and memory capped (the GPU requests stay as shipped); see
:func:`fit_profile_to_node`. Every job runs on one thread, in both runs, so that two jobs share
the 2 cores at a time and both runs do the same arithmetic. Where SLURM cannot start (not root, packages missing), the test
fails and says why: it never skips silently.
"""

import re
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import yaml

from helpers import ROOT, snakemake
import localslurm
from localslurm import LocalSlurm, SlurmUnavailable

PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
THREADS = 1  # per job, in the local run (--max-threads) and through SLURM alike


@pytest.fixture(scope="module")
def cluster():
    c = LocalSlurm(gpus=2)
    try:
        c.start()
    except SlurmUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    yield c
    c.stop()


def fit_profile_to_node(dest, cpus, memory_mb):
    """The shipped profile, sized down to the test node; returns the profile folder.

    Threads and CPUs per GPU are capped to ``cpus``, every memory request to half the node;
    GPU requests, runtimes and the rest are kept. Without accounting the plugin must read job
    states from squeue; successful jobs keep their SLURM logs so the test can read them.
    """
    prof = yaml.safe_load(PROFILE.read_text())
    prof["set-threads"] = {rule: min(n, cpus) for rule, n in prof["set-threads"].items()}
    for res in (prof["default-resources"], *prof["set-resources"].values()):
        if "cpus_per_gpu" in res:
            res["cpus_per_gpu"] = min(res["cpus_per_gpu"], cpus)
        res["mem_mb"] = f"min({res['mem_mb']}, {memory_mb // 2})"
    prof.update({"slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 2,
                 "slurm-keep-successful-logs": True})
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return dest


def small_digits_config():
    """The default config with two of its networks (one the random control) and few epochs."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["experiments"] = {"digits": cfg["experiments"]["digits"]}  # the closed-set experiment only
    nets = cfg["experiments"]["digits"]["networks"]
    cfg["experiments"]["digits"]["networks"] = {k: nets[k] for k in ("mlp", "random")}
    # composition compares triples: two networks have none
    cfg["experiments"]["digits"]["analyses"] = [a for a in cfg["experiments"]["digits"].get("analyses", [])
                                                if a != "composition"]
    nets["mlp"]["train"]["epochs"] = 6
    return cfg


def job_stats(output):
    """Snakemake's 'Job stats' table: {rule: count}."""
    block = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", block, flags=re.M)}


def megabytes(slurm_size):
    """'16000M' or '8G' (as scontrol prints memory) in MB."""
    return round(float(slurm_size[:-1]) * {"M": 1, "G": 1024, "T": 1024**2}[slurm_size[-1]])


def rule_of(comment, rules):
    """The rule a SLURM job comment (``rule_<name>`` or ``rule_<name>_wildcards_...``) names."""
    for rule in sorted(rules, key=len, reverse=True):
        if comment == f"rule_{rule}" or comment.startswith(f"rule_{rule}_wildcards_"):
            return rule
    raise AssertionError(f"SLURM job comment {comment!r} names no rule of {sorted(rules)}")


@pytest.mark.slurm
@pytest.mark.workflow
@pytest.mark.tensorflow
def test_digits_workflow_runs_as_slurm_jobs_and_matches_a_local_run(tmp_path, cluster):
    cfg = small_digits_config()
    profile = fit_profile_to_node(tmp_path / "profile", THREADS, cluster.memory_mb)
    work = tmp_path / "slurm"
    for d in (work, tmp_path / "local"):
        d.mkdir()
    # the local run fills the cores while the SLURM run waits between status checks
    with ThreadPoolExecutor(1) as pool:
        local = pool.submit(snakemake, tmp_path / "local", cfg, "--max-threads", str(THREADS), timeout=900)
        r = snakemake(work, cfg, "--profile", str(profile), env=cluster.env, timeout=900)
        local.result()
    out = r.stdout + r.stderr

    # every job except the target rule went to SLURM, and SLURM ran each to completion
    stats = job_stats(out)
    stats.pop("all")
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", out))
    assert len(submitted) == sum(stats.values()), out[-3000:]
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    jobs = {i: j for i, j in cluster.jobs().items() if j["JobName"] == run_id}
    assert set(jobs) == set(submitted.values())
    ctld_log = cluster.log("slurmctld")
    shipped = yaml.safe_load(PROFILE.read_text())["set-resources"]
    fitted = yaml.safe_load((profile / "config.yaml").read_text())
    per_rule = {}
    for jid, job in jobs.items():
        rule = rule_of(job["Comment"], stats)
        per_rule[rule] = per_rule.get(rule, 0) + 1
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        assert f"_job_complete: JobId={jid} done" in ctld_log
        # the profile names every rule (rule-level resources would otherwise beat default-resources)
        assert rule in fitted["set-resources"], f"the profile does not size rule {rule}"
        mem = {**fitted["default-resources"], **fitted["set-resources"][rule]}["mem_mb"]
        assert megabytes(job["MinMemoryNode"]) == eval(mem, {"attempt": 1}), job
        assert list(work.glob(f".snakemake/slurm_logs/rule_{rule}/**/{jid}.log")), f"no SLURM log of job {jid}"
        if shipped.get(rule, {}).get("gpu"):  # the shipped GPU request, as SLURM received it
            assert job.get("TresPerJob") == "gres:gpu:1", job
            assert job.get("CpusPerTres") == f"gres:gpu:{THREADS}", job
        else:
            assert "gpu" not in job.get("TresPerJob", "") + job.get("TresPerNode", ""), job
    assert per_rule == stats
    assert len(list(work.glob("results/digits/benchmarks/**/*.tsv"))) == sum(stats.values())

    # the same tables as the local run
    for name in ("closed_set.csv", "closed_set_matrix.csv"):
        local = pd.read_csv(tmp_path / "local" / "results" / "digits" / "tables" / name)
        remote = pd.read_csv(work / "results" / "digits" / "tables" / name)
        pd.testing.assert_frame_equal(remote, local, check_exact=True)


def test_a_cluster_that_cannot_start_says_why(monkeypatch):
    monkeypatch.setattr(localslurm, "which", lambda name: None if name == "slurmctld" else f"/usr/bin/{name}")
    with pytest.raises(SlurmUnavailable, match="slurmctld not installed. Run: apt-get install"):
        LocalSlurm().start()


@pytest.mark.slurm
def test_the_pass_and_the_fits_run_on_dask_workers_that_are_slurm_jobs_and_give_the_local_results(
        tmp_path, cluster, monkeypatch):
    """engine.scheduler slurm: dask-jobqueue submits the workers with sbatch; SLURM's own records show them; the
    blocks and then the ridge maps (one penalty, and a list chosen on the folds) equal a synchronous run's."""
    import numpy as np

    from embmap import engine
    from embmap.fit import gram, ridge

    for k, v in cluster.env.items():
        monkeypatch.setenv(k, v)  # sbatch, squeue and scancel find this cluster
    rng = np.random.default_rng(11)
    arrays = {k: (rng.standard_normal((700, d)) + 3).astype(np.float32) for k, d in (("a", 30), ("b", 20))}
    kw = dict(folds=2, block_rows=64, sample_sizes=(150,), precision="float32")
    alphas = (1.0, [0.1, 1.0, 10.0])

    def maps(blocks, get):
        return [(a, alpha, ridge.fit_maps(blocks, a, [b for b in arrays if b != a], alpha, get=get))
                for a in arrays for alpha in alphas]

    with engine.scheduler({"scheduler": "synchronous"}) as get:
        local = gram.cross_products(arrays, get=get, **kw)
        local_maps = maps(local, get)
    logged = []
    options = {"scheduler": "slurm", "workers": 1, "timeout": 240,
               "slurm": {"cores": 1, "memory": f"{min(2000, cluster.memory_mb // 2)}MB", "walltime": "00:15:00",
                         "log_directory": str(tmp_path / "worker-logs"), "local_directory": str(tmp_path / "scratch")}}
    with engine.scheduler(options, log=logged.append) as get:
        remote = gram.cross_products(arrays, get=get, **kw)
        remote_maps = maps(remote, get)
        workers = {i: j for i, j in cluster.jobs().items() if j["JobName"] == "embmap-dask"}
    assert workers and all(j["JobState"] in ("RUNNING", "COMPLETING", "COMPLETED", "CANCELLED") for j in workers.values())
    assert any("#SBATCH" in line and "dask" in line for line in logged), logged
    assert any("dashboard" in line for line in logged), logged
    for a, b in (local, remote), *zip(local.folds, remote.folds), (local.subsets[150], remote.subsets[150]):
        assert a.n == b.n
        for x in a.names if a.n else []:
            np.testing.assert_array_equal(a.means[x], b.means[x])
            for y in a.names:
                np.testing.assert_array_equal(a.gram(x, y), b.gram(x, y))
    for (a, alpha, x), (_, _, y) in zip(local_maps, remote_maps):
        assert x.keys() == y.keys() and x
        for b in x:
            np.testing.assert_array_equal(x[b].weight, y[b].weight, err_msg=f"{a} -> {b}, alpha {alpha}")
            np.testing.assert_array_equal(x[b].intercept, y[b].intercept, err_msg=f"{a} -> {b}, alpha {alpha}")
            assert x[b].attrs == y[b].attrs
