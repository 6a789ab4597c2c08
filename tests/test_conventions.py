"""Snakemake conventions: lint-clean and snakefmt-formatted files, every rule logged, benchmarked and
sized, a SLURM profile that covers every rule, and a report in which every table and figure has a
caption."""

import json
import re
import subprocess
import sys

import pytest
import yaml

from embmap import plan, steps
from helpers import ROOT, byo_config, snakemake, synthetic_stores

RULE_FILES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"


def rule_directives():
    """{rule: {directive: text}} of every rule in workflow/rules/*.smk (snakefmt layout)."""
    out = {}
    for path in RULE_FILES:
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", path.read_text(), flags=re.M):
            out[name] = {m.group(1): (m.group(2) + "\n" + m.group(3)).strip()
                         for m in re.finditer(r"^    (\w+):[ ]?(.*)\n((?:        .*\n|\n)*)", body, flags=re.M)}
            out[name]["_file"] = path
    return out


def test_snakemake_lint_reports_nothing(tmp_path):
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--configfile",
                        str(ROOT / "config.yaml"), "--directory", str(tmp_path), "--lint"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "Lints for" not in r.stdout + r.stderr, r.stdout + r.stderr


def test_snakemake_files_are_formatted_with_snakefmt():
    r = subprocess.run(["snakefmt", "--check", "--diff", "Snakefile", "workflow"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, f"run `snakefmt Snakefile workflow` to format:\n{r.stdout[-3000:]}{r.stderr[-2000:]}"


def test_ci_runs_exactly_the_readme_test_commands_fast_tier_first():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"^## Run the tests\n+```bash\n(.*?)```", readme, flags=re.S | re.M)
    assert block, "README.md: no bash block under '## Run the tests'"
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python ")]
    assert ci == commands
    tiers = [c for c in commands if "pytest" in c]
    assert tiers == ['python -m pytest -q -m "not slow"', "python -m pytest -q -m slow"], tiers


def test_every_rule_has_a_log_a_benchmark_threads_and_memory():
    rules = rule_directives()
    assert set(rules) == set(steps.STEPS), "every rule has a step of its name and every step a rule"
    for name, d in rules.items():
        # log and benchmark come from the plan, named after the rule and spelled alike
        log = re.fullmatch(rf'P\.log\("{name}"(, "[^"]+")?\),?', d.get("log", ""))
        assert log, f"rule {name}: log: must be P.log({name!r}[, SUB])"
        assert d.get("benchmark", "") == f"P.benchmark{d['log'].rstrip(',')[5:]}", \
            f"rule {name}: benchmark: must be spelled as its log: P.benchmark({name!r}[, SUB])"
        threads = re.fullmatch(r"(?:P\.threads\()?(\d+)\)?", d.get("threads", ""))
        assert threads and int(threads.group(1)) >= 1, f"rule {name} names no threads:"
        assert re.search(r"\bmem_mb=\d+", d.get("resources", "")), f"rule {name} names no mem_mb resource"
        # the rule only wires: its step takes its arguments from the plan
        assert d.get("params", "") == f'job=P.job("{name}"),', f"rule {name}: params: must be job=P.job({name!r})"
        assert d.get("script", "") == '"../scripts/step.py"', f"rule {name}: script: must be ../scripts/step.py"
        assert name in steps.STEPS, f"rule {name} has no step in embmap.steps"


def test_no_rule_spells_a_path_or_a_decision():
    """Paths come from the plan (P.pattern / P.inputs), never from f-strings or lambdas in the rules."""
    for path in RULE_FILES + [ROOT / "Snakefile"]:
        text = path.read_text()
        assert "results/" not in text and not re.search(r"\{exp\}/", text), f"{path.name} spells a path"
        assert "lambda" not in text, f"{path.name} decides something in a lambda the plan should answer"


def _eval(expr, attempt):
    value = eval(str(expr), {"__builtins__": {}}, {"attempt": attempt})
    assert isinstance(value, int) and value > 0, expr
    return value


def test_slurm_profile_covers_every_rule_and_asks_gpus_for_networks():
    text = PROFILE.read_text()
    prof = yaml.safe_load(text)
    rules = rule_directives()
    assert prof["executor"] == "slurm"
    assert set(prof["set-resources"]) <= set(rules), "set-resources names a rule the workflow does not have"
    assert set(prof["set-threads"]) <= set(rules), "set-threads names a rule the workflow does not have"
    for name, d in rules.items():
        assert name in prof["set-resources"], f"the SLURM profile does not size rule {name}"
        res = {**prof["default-resources"], **prof["set-resources"][name]}
        assert _eval(res["runtime"], 2) > _eval(res["runtime"], 1), f"{name}: a retry gets no more time"
        assert _eval(res["mem_mb"], 1) >= 1000
        # prepare_split uses TensorFlow only to decode every image once (a CPU job)
        runs_networks = "envs/tensorflow.yaml" in d["conda"] and name != "prepare_split"
        if runs_networks:  # training and extraction: one GPU, and CPUs for the input pipeline
            assert res.get("gpu") == 1, f"rule {name} runs networks: the profile must ask gpu: 1"
            assert res["cpus_per_gpu"] == prof["set-threads"][name]
        else:
            assert "gpu" not in res and "cpus_per_gpu" not in res, f"rule {name} needs no GPU"
        assert "slurm_partition" not in res and "slurm_account" not in res  # left to the user
    assert "PARTITION AND ACCOUNT ARE YOURS TO SET" in text


def report_outputs(rules):
    """(rule, path, caption) of every table and figure (.csv, .png) the rules write."""
    out = []
    for name, d in rules.items():
        lines = d.get("output", "").splitlines()
        for i, line in enumerate(lines):
            m = re.search(r'P\.pattern\("(\w+)"(?:, ext="(\w+)")?\)', line)
            if not m:
                continue
            path = plan.OUTPUTS[m.group(1)].replace("{ext}", m.group(2) or "")
            # the SVG is the PNG's vector copy; .json files hold run metadata, not results
            if path.startswith(("tables/", "figures/")) and not path.endswith((".svg", ".json")):
                assert lines[i - 1].rstrip().endswith("report("), f"rule {name}: {path} is not in report()"
                cap = re.search(r'caption="([^"]+)"', lines[i + 1])
                assert cap, f"rule {name}: {path} has no caption"
                out.append((name, path, d["_file"].parent / cap.group(1)))
    return out


@pytest.mark.workflow
def test_report_holds_every_table_and_figure_with_its_caption(tmp_path):
    captions = report_outputs(rule_directives())
    assert len(captions) >= 3
    for rule, path, caption in captions:
        assert caption.exists() and len(caption.read_text().split()) >= 30, f"{caption}: write what it shows"

    dirs = synthetic_stores(tmp_path / "byo", names=("a", "b"), dims=(6, 5))
    cfg = byo_config(dirs)
    snakemake(tmp_path, cfg)
    snakemake(tmp_path, cfg, "--report", "results/report.html")
    html = (tmp_path / "results" / "report.html").read_text()
    start = html.index("var results = ", html.index('<script id="results">')) + len("var results = ")
    results, _ = json.JSONDecoder().raw_decode(html, start)
    made = {str(p.relative_to(tmp_path)) for pat in ("tables/*.csv", "figures/*.png")
            for p in (tmp_path / "results" / "byo").glob(pat)}
    assert set(results) == made
    for path, entry in results.items():
        assert "byo" in entry["caption"] and "{{" not in entry["caption"], path
    desc = re.search(r'var workflow_desc = "(.*)";', html).group(1)
    assert "ridge-regression map" in desc
