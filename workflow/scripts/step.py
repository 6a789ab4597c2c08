# Every rule's script: run the rule's step (embmap.steps) with the job's arguments and log.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from embmap import steps  # noqa: E402

steps.run(snakemake)
