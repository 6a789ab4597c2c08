# Thin wrapper: unpack the snakemake object and call embmap.steps.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from embmap import steps  # noqa: E402

with steps.logged(snakemake.log[0]):
    steps.align_faces(snakemake.params.dataset, snakemake.input.faces, snakemake.wildcards.align, snakemake.output[0])
