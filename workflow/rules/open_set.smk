# The open-set task (paper section 4): pairs, verification through mapped embeddings (Table 6), identification.


rule write_pairs:
    output:
        f"{R}/{{exp}}/data/pairs.txt",
    log:
        f"{R}/{{exp}}/logs/write_pairs.log",
    params:
        dataset=lambda wc: exp_of(wc).dataset,
    conda:
        "../../envs/analysis.yaml"
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
    params:
        stores=pairs_stores,
        alpha=lambda wc: exp_of(wc).mapping["alpha"],
        precision=lambda wc: exp_of(wc).mapping.get("precision", "float64"),
    threads: 2
    resources:
        mem_mb=6000,
    conda:
        "../../envs/analysis.yaml"
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
    params:
        stores=pairs_stores,
        alpha=lambda wc: exp_of(wc).mapping["alpha"],
        precision=lambda wc: exp_of(wc).mapping.get("precision", "float64"),
        folds=lambda wc: exp_of(wc).identification["folds"],
        seed=lambda wc: exp_of(wc).identification["seed"],
    threads: 2
    resources:
        mem_mb=6000,
    conda:
        "../../envs/analysis.yaml"
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
    params:
        labels=network_labels,
        controls=control_networks,
        title=lambda wc: f"{wc.exp}: verification through the map",
    conda:
        "../../envs/analysis.yaml"
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
    params:
        labels=network_labels,
        controls=control_networks,
        title=lambda wc: f"{wc.exp}: rank-1 identification",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/plot_open_set.py"


rule detect_faces:
    input:
        manifest=f"{R}/{{exp}}/data/manifest.csv",
    output:
        f"{R}/{{exp}}/data/faces.csv",
    log:
        f"{R}/{{exp}}/logs/detect_faces.log",
    params:
        dataset=lambda wc: exp_of(wc).dataset,
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        "../../envs/tensorflow.yaml"
    script:
        "../scripts/detect_faces.py"


rule align_faces:
    input:
        faces=f"{R}/{{exp}}/data/faces.csv",
    output:
        directory(f"{R}/{{exp}}/aligned/{{align}}.zarr"),
    log:
        f"{R}/{{exp}}/logs/align_faces/{{align}}.log",
    params:
        dataset=lambda wc: exp_of(wc).dataset,
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/align_faces.py"
