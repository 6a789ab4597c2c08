# embmap: how interchangeable are the embedding spaces of neural networks?
#
#   snakemake --cores all                          # the digits demo in config.yaml
#   snakemake --cores 8 --configfile configs/X.yaml
#
# This file only wires things together; all logic lives in workflow/embmap.
import sys

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, f"{workflow.basedir}/workflow")
from embmap.plan import Plan
from embmap.runlock import RunLock

# A config named on the command line (--configfile) is the whole config: the demo in config.yaml is
# read only when none is named, so its experiments never join another config's run. --config KEY=VALUE
# still overrides single keys of either.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


# Validates the config against workflow/schemas/config.schema.yaml (an error names the key at fault,
# before any job runs; the config files are read again strictly, so a key given twice is an error),
# fills its defaults, checks bring-your-own stores' metadata and answers every path and job argument.
P = Plan.or_exit(config, files=workflow.configfiles)
# Snakemake locks only its working directory: every experiment folder of the results is locked for
# the whole run, so a run started elsewhere with the same results folder stops before any job.
LOCK = RunLock(P.lock_dirs())


onstart:
    LOCK.acquire()


onsuccess:
    LOCK.release()


onerror:
    LOCK.release()


wildcard_constraints:
    exp="[A-Za-z0-9_-]+",
    network="[A-Za-z0-9_-]+",
    source="[A-Za-z0-9_-]+",
    target="[A-Za-z0-9_-]+",
    split="[A-Za-z0-9_-]+",
    align="(facenet[0-9]+m[0-9]+|arcface[0-9]+)",


include: "workflow/rules/data.smk"
include: "workflow/rules/networks.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        P.targets(),
