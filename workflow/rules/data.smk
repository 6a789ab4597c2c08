rule prepare_split:
    input:
        unpack(split_inputs),
    output:
        f"{R}/{{exp}}/data/manifest.csv",
    log:
        f"{R}/{{exp}}/logs/prepare_split.log",
    params:
        dataset=lambda wc: exp_of(wc).dataset,
    conda:
        "../../envs/tensorflow.yaml"  # image files are decoded once to find unreadable ones
    script:
        "../scripts/prepare_split.py"
