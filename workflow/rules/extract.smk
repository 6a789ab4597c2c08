rule train_network:
    input:
        manifest=f"{R}/{{exp}}/data/manifest.csv",
    output:
        directory(f"{R}/{{exp}}/models/{{network}}"),
    log:
        f"{R}/{{exp}}/logs/train_network/{{network}}.log",
    params:
        spec=lambda wc: P.network(wc.exp, wc.network).spec,
        dataset=lambda wc: exp_of(wc).dataset,
    threads: 1  # training runs single-threaded for bit-identical weights (embmap.steps.TRAIN_THREADS)
    resources:
        mem_mb=4000,
    conda:
        "../../envs/tensorflow.yaml"
    script:
        "../scripts/train_network.py"


rule extract:
    input:
        unpack(extract_inputs),
    output:
        directory(f"{R}/{{exp}}/embeddings/{{network}}/{{split}}.zarr"),
    log:
        f"{R}/{{exp}}/logs/extract/{{network}}/{{split}}.log",
    params:
        spec=lambda wc: P.network(wc.exp, wc.network).spec,
        dataset=lambda wc: exp_of(wc).dataset,
        store=lambda wc: exp_of(wc).store_options,
        with_classifier=lambda wc: exp_of(wc).task == "closed_set",
        preprocessing=lambda wc: P.preprocessing(wc.exp, wc.network),
        normalise=lambda wc: exp_of(wc).task == "open_set",
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        "../../envs/tensorflow.yaml"
    script:
        "../scripts/extract.py"
