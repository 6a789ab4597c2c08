rule prepare_split:
    input:
        unpack(split_inputs),
    output:
        f"{R}/{{exp}}/data/manifest.csv",
    log:
        f"{R}/{{exp}}/logs/prepare_split.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/prepare_split.tsv"
    conda:
        "../../envs/tensorflow.yaml"  # image files are decoded once to find unreadable ones
    threads: 2
    resources:
        mem_mb=2000,
    params:
        dataset=lambda wc: exp_of(wc).dataset,
    script:
        "../scripts/prepare_split.py"
