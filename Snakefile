# embmap: how interchangeable are the embedding spaces of neural networks?
#
#   snakemake --cores all                          # the digits demo in config.yaml
#   snakemake --cores 8 --configfile configs/X.yaml
#
# This file only wires things together; all logic lives in workflow/embmap.
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, f"{workflow.basedir}/workflow")
from embmap import plan as embmap_plan


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


embmap_plan.check_schema(config)  # names the key at fault in one line
validate(config, "workflow/schemas/config.schema.yaml")
P = embmap_plan.Plan(config)
R = P.results


wildcard_constraints:
    exp="[A-Za-z0-9_-]+",
    network="[A-Za-z0-9_-]+",
    source="[A-Za-z0-9_-]+",
    split="[A-Za-z0-9_-]+",
    align="(facenet[0-9]+m[0-9]+|arcface[0-9]+)",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/open_set.smk"


rule all:
    default_target: True
    input:
        P.targets(),
