rule train_network:
    input:
        manifest=f"{R}/{{exp}}/data/manifest.csv",
    output:
        directory(f"{R}/{{exp}}/models/{{network}}"),
    log:
        f"{R}/{{exp}}/logs/train_network/{{network}}.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/train_network/{{network}}.tsv"
    conda:
        "../../envs/tensorflow.yaml"
    # one thread: bit-identical weights whatever the core count (embmap.steps.TRAIN_THREADS)
    threads: 1
    resources:
        mem_mb=4000,
    params:
        spec=lambda wc: P.network(wc.exp, wc.network).spec,
        dataset=lambda wc: exp_of(wc).dataset,
    script:
        "../scripts/train_network.py"


rule extract:
    input:
        unpack(extract_inputs),
    output:
        directory(f"{R}/{{exp}}/embeddings/{{network}}/{{split}}.zarr"),
    log:
        f"{R}/{{exp}}/logs/extract/{{network}}/{{split}}.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/extract/{{network}}/{{split}}.tsv"
    conda:
        "../../envs/tensorflow.yaml"
    threads: 4
    resources:
        mem_mb=8000,
    params:
        spec=lambda wc: P.network(wc.exp, wc.network).spec,
        dataset=lambda wc: exp_of(wc).dataset,
        store=lambda wc: exp_of(wc).store_options,
        with_classifier=lambda wc: exp_of(wc).task == "closed_set",
        preprocessing=lambda wc: P.preprocessing(wc.exp, wc.network),
        normalise=lambda wc: exp_of(wc).task == "open_set",
    script:
        "../scripts/extract.py"
