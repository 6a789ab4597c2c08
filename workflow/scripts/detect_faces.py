# Thin wrapper: unpack the snakemake object and call embmap.steps.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from embmap import steps  # noqa: E402

with steps.logged(snakemake.log[0]):
    steps.detect_faces(snakemake.params.dataset, snakemake.input.manifest, snakemake.output[0],
                       threads=snakemake.threads)
