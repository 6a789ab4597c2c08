# The open-set task (paper section 4): pairs, verification through mapped embeddings (Table 6), identification.


rule write_pairs:
    output:
        f"{R}/{{exp}}/data/pairs.txt",
    log:
        f"{R}/{{exp}}/logs/write_pairs.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/write_pairs.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        dataset=lambda wc: exp_of(wc).dataset,
    script:
        "../scripts/write_pairs.py"


rule evaluate_open_set:
    input:
        unpack(pairs_stores),
        pairs=lambda wc: P.pairs_file(wc.exp),
    output:
        table=report(
            f"{R}/{{exp}}/tables/open_set.csv",
            caption="../report/open_set.rst",
            category="{exp}",
            subcategory="open set",
        ),
        folds=report(
            f"{R}/{{exp}}/tables/open_set_folds.csv",
            caption="../report/open_set_folds.rst",
            category="{exp}",
            subcategory="open set",
        ),
        matrix=report(
            f"{R}/{{exp}}/tables/open_set_matrix.csv",
            caption="../report/open_set_matrix.rst",
            category="{exp}",
            subcategory="open set",
        ),
        meta=f"{R}/{{exp}}/tables/open_set.json",
    log:
        f"{R}/{{exp}}/logs/evaluate_open_set.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/evaluate_open_set.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 2
    resources:
        mem_mb=6000,
    params:
        stores=pairs_stores,
        alpha=lambda wc: exp_of(wc).mapping["alpha"],
        precision=lambda wc: exp_of(wc).mapping.get("precision", "float64"),
    script:
        "../scripts/evaluate_open_set.py"


rule evaluate_identification:
    input:
        unpack(pairs_stores),
    output:
        table=report(
            f"{R}/{{exp}}/tables/identification.csv",
            caption="../report/identification.rst",
            category="{exp}",
            subcategory="identification",
        ),
        matrix=report(
            f"{R}/{{exp}}/tables/identification_matrix.csv",
            caption="../report/identification_matrix.rst",
            category="{exp}",
            subcategory="identification",
        ),
    log:
        f"{R}/{{exp}}/logs/evaluate_identification.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/evaluate_identification.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 2
    resources:
        mem_mb=6000,
    params:
        stores=pairs_stores,
        alpha=lambda wc: exp_of(wc).mapping["alpha"],
        precision=lambda wc: exp_of(wc).mapping.get("precision", "float64"),
        folds=lambda wc: exp_of(wc).identification["folds"],
        seed=lambda wc: exp_of(wc).identification["seed"],
    script:
        "../scripts/evaluate_identification.py"


rule plot_open_set:
    input:
        matrix=f"{R}/{{exp}}/tables/open_set_matrix.csv",
    output:
        png=report(
            f"{R}/{{exp}}/figures/open_set_heatmap.png",
            caption="../report/open_set_heatmap.rst",
            category="{exp}",
            subcategory="open set",
        ),
        svg=f"{R}/{{exp}}/figures/open_set_heatmap.svg",
    log:
        f"{R}/{{exp}}/logs/plot_open_set.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/plot_open_set.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        labels=network_labels,
        controls=control_networks,
        title=lambda wc: f"{wc.exp}: verification through the map",
    script:
        "../scripts/plot_open_set.py"


rule plot_identification:
    input:
        matrix=report(
            f"{R}/{{exp}}/tables/identification_matrix.csv",
            caption="../report/identification_matrix.rst",
            category="{exp}",
            subcategory="identification",
        ),
    output:
        png=report(
            f"{R}/{{exp}}/figures/identification_heatmap.png",
            caption="../report/identification_heatmap.rst",
            category="{exp}",
            subcategory="identification",
        ),
        svg=f"{R}/{{exp}}/figures/identification_heatmap.svg",
    log:
        f"{R}/{{exp}}/logs/plot_identification.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/plot_identification.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        labels=network_labels,
        controls=control_networks,
        title=lambda wc: f"{wc.exp}: rank-1 identification",
    script:
        "../scripts/plot_open_set.py"


rule detect_faces:
    input:
        manifest=f"{R}/{{exp}}/data/manifest.csv",
    output:
        f"{R}/{{exp}}/data/faces.csv",
    log:
        f"{R}/{{exp}}/logs/detect_faces.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/detect_faces.tsv"
    conda:
        "../../envs/tensorflow.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        dataset=lambda wc: exp_of(wc).dataset,
    script:
        "../scripts/detect_faces.py"


rule align_faces:
    input:
        faces=f"{R}/{{exp}}/data/faces.csv",
    output:
        directory(f"{R}/{{exp}}/aligned/{{align}}.zarr"),
    log:
        f"{R}/{{exp}}/logs/align_faces/{{align}}.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/align_faces/{{align}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        dataset=lambda wc: exp_of(wc).dataset,
    script:
        "../scripts/align_faces.py"
