# Evaluation: Table 2 (closed set), Table 1 (the networks), Table 6 (open-set verification) and identification;
# the closed-set analyses (asymmetry, composition, classifier_view, shared_space, layers; index_predicts and n95
# from the tables) where the experiment lists them.


rule evaluate_closed_set:
    input:
        unpack(P.inputs("evaluate_closed_set")),
    output:
        table=report(
            P.pattern("closed_set"),
            caption="../report/closed_set.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        matrix=report(
            P.pattern("closed_set_matrix"),
            caption="../report/closed_set_matrix.rst",
            category="{exp}",
            subcategory="closed set",
        ),
    log:
        P.log("evaluate_closed_set"),
    benchmark:
        P.benchmark("evaluate_closed_set")
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(4)
    resources:
        mem_mb=8000,
    params:
        job=P.job("evaluate_closed_set"),
    script:
        "../scripts/step.py"


rule network_table:
    input:
        unpack(P.inputs("network_table")),
    output:
        table=report(
            P.pattern("networks_table"),
            caption="../report/networks.rst",
            category="{exp}",
            subcategory="networks",
        ),
    log:
        P.log("network_table"),
    benchmark:
        P.benchmark("network_table")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        job=P.job("network_table"),
    script:
        "../scripts/step.py"


rule evaluate_open_set:
    input:
        unpack(P.inputs("evaluate_open_set")),
    output:
        table=report(
            P.pattern("open_set"),
            caption="../report/open_set.rst",
            category="{exp}",
            subcategory="open set",
        ),
        folds_table=report(
            P.pattern("open_set_folds"),
            caption="../report/open_set_folds.rst",
            category="{exp}",
            subcategory="open set",
        ),
        matrix=report(
            P.pattern("open_set_matrix"),
            caption="../report/open_set_matrix.rst",
            category="{exp}",
            subcategory="open set",
        ),
        meta=P.pattern("open_set_meta"),
    log:
        P.log("evaluate_open_set"),
    benchmark:
        P.benchmark("evaluate_open_set")
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(2)
    resources:
        mem_mb=6000,
    params:
        job=P.job("evaluate_open_set"),
    script:
        "../scripts/step.py"


rule evaluate_identification:
    input:
        unpack(P.inputs("evaluate_identification")),
    output:
        table=report(
            P.pattern("identification"),
            caption="../report/identification.rst",
            category="{exp}",
            subcategory="identification",
        ),
        matrix=report(
            P.pattern("identification_matrix"),
            caption="../report/identification_matrix.rst",
            category="{exp}",
            subcategory="identification",
        ),
    log:
        P.log("evaluate_identification"),
    benchmark:
        P.benchmark("evaluate_identification")
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(2)
    resources:
        mem_mb=6000,
    params:
        job=P.job("evaluate_identification"),
    script:
        "../scripts/step.py"


rule similarity:
    input:
        unpack(P.inputs("similarity")),
    output:
        table=report(
            P.pattern("similarity"),
            caption="../report/similarity.rst",
            category="{exp}",
            subcategory="similarity",
        ),
    log:
        P.log("similarity"),
    benchmark:
        P.benchmark("similarity")
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(2)
    resources:
        mem_mb=4000,
    params:
        job=P.job("similarity"),
    script:
        "../scripts/step.py"


rule sample_efficiency:
    input:
        unpack(P.inputs("sample_efficiency")),
    output:
        table=report(
            P.pattern("sample_efficiency"),
            caption="../report/sample_efficiency.rst",
            category="{exp}",
            subcategory="sample efficiency",
        ),
    log:
        P.log("sample_efficiency"),
    benchmark:
        P.benchmark("sample_efficiency")
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(4)
    resources:
        mem_mb=8000,
    params:
        job=P.job("sample_efficiency"),
    script:
        "../scripts/step.py"


rule asymmetry:
    input:
        unpack(P.inputs("asymmetry")),
    output:
        table=report(
            P.pattern("asymmetry"),
            caption="../report/asymmetry.rst",
            category="{exp}",
            subcategory="closed set",
        ),
    log:
        P.log("asymmetry"),
    benchmark:
        P.benchmark("asymmetry")
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(4)
    resources:
        mem_mb=8000,
    params:
        job=P.job("asymmetry"),
    script:
        "../scripts/step.py"


rule composition:
    input:
        unpack(P.inputs("composition")),
    output:
        table=report(
            P.pattern("composition"),
            caption="../report/composition.rst",
            category="{exp}",
            subcategory="closed set",
        ),
    log:
        P.log("composition"),
    benchmark:
        P.benchmark("composition")
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(4)
    resources:
        mem_mb=8000,
    params:
        job=P.job("composition"),
    script:
        "../scripts/step.py"


rule classifier_view:
    input:
        unpack(P.inputs("classifier_view")),
    output:
        table=report(
            P.pattern("classifier_view"),
            caption="../report/classifier_view.rst",
            category="{exp}",
            subcategory="closed set",
        ),
    log:
        P.log("classifier_view"),
    benchmark:
        P.benchmark("classifier_view")
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(4)
    resources:
        mem_mb=8000,
    params:
        job=P.job("classifier_view"),
    script:
        "../scripts/step.py"


rule shared_space:
    input:
        unpack(P.inputs("shared_space")),
    output:
        table=report(
            P.pattern("shared_space"),
            caption="../report/shared_space.rst",
            category="{exp}",
            subcategory="closed set",
        ),
    log:
        P.log("shared_space"),
    benchmark:
        P.benchmark("shared_space")
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(4)
    resources:
        mem_mb=8000,
    params:
        job=P.job("shared_space"),
    script:
        "../scripts/step.py"


rule index_predicts:
    input:
        unpack(P.inputs("index_predicts")),
    output:
        table=report(
            P.pattern("index_predicts"),
            caption="../report/index_predicts.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        pairs_table=report(
            P.pattern("index_predicts_pairs"),
            caption="../report/index_predicts_pairs.rst",
            category="{exp}",
            subcategory="closed set",
        ),
    log:
        P.log("index_predicts"),
    benchmark:
        P.benchmark("index_predicts")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        job=P.job("index_predicts"),
    script:
        "../scripts/step.py"


rule n95:
    input:
        unpack(P.inputs("n95")),
    output:
        table=report(
            P.pattern("n95"),
            caption="../report/n95.rst",
            category="{exp}",
            subcategory="closed set",
        ),
    log:
        P.log("n95"),
    benchmark:
        P.benchmark("n95")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("n95"),
    script:
        "../scripts/step.py"


rule layer_sample_efficiency:
    input:
        unpack(P.inputs("layer_sample_efficiency")),
    output:
        table=report(
            P.pattern("layer_sample_efficiency"),
            caption="../report/layer_sample_efficiency.rst",
            category="{exp}",
            subcategory="sample efficiency",
        ),
    log:
        P.log("layer_sample_efficiency"),
    benchmark:
        P.benchmark("layer_sample_efficiency")
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(4)
    resources:
        mem_mb=8000,
    params:
        job=P.job("layer_sample_efficiency"),
    script:
        "../scripts/step.py"


rule layers:
    input:
        unpack(P.inputs("layers")),
    output:
        similarity_table=report(
            P.pattern("layer_similarity"),
            caption="../report/layer_similarity.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        maps_table=report(
            P.pattern("layer_maps"),
            caption="../report/layer_maps.rst",
            category="{exp}",
            subcategory="closed set",
        ),
    log:
        P.log("layers"),
    benchmark:
        P.benchmark("layers")
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(4)
    resources:
        mem_mb=8000,
    params:
        job=P.job("layers"),
    script:
        "../scripts/step.py"
