# Figures: every heatmap of the report, drawn by one step from the matrix tables.


rule plot_closed_set:
    input:
        matrix=P.pattern("closed_set_matrix"),
        table=P.pattern("closed_set"),
    output:
        png=report(
            P.pattern("closed_set_heatmap", ext="png"),
            caption="../report/closed_set_heatmap.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        svg=P.pattern("closed_set_heatmap", ext="svg"),
    log:
        P.log("plot_closed_set"),
    benchmark:
        P.benchmark("plot_closed_set")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_closed_set"),
    script:
        "../scripts/step.py"


rule plot_methods:
    input:
        table=P.pattern("closed_set"),
    output:
        png=report(
            P.pattern("methods_figure", ext="png"),
            caption="../report/methods_figure.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        svg=P.pattern("methods_figure", ext="svg"),
    log:
        P.log("plot_methods"),
    benchmark:
        P.benchmark("plot_methods")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_methods"),
    script:
        "../scripts/step.py"


rule plot_open_set:
    input:
        matrix=P.pattern("open_set_matrix"),
        table=P.pattern("open_set"),
    output:
        png=report(
            P.pattern("open_set_heatmap", ext="png"),
            caption="../report/open_set_heatmap.rst",
            category="{exp}",
            subcategory="open set",
        ),
        svg=P.pattern("open_set_heatmap", ext="svg"),
    log:
        P.log("plot_open_set"),
    benchmark:
        P.benchmark("plot_open_set")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_open_set"),
    script:
        "../scripts/step.py"


rule plot_identification:
    input:
        matrix=P.pattern("identification_matrix"),
        table=P.pattern("identification"),
    output:
        png=report(
            P.pattern("identification_heatmap", ext="png"),
            caption="../report/identification_heatmap.rst",
            category="{exp}",
            subcategory="identification",
        ),
        svg=P.pattern("identification_heatmap", ext="svg"),
    log:
        P.log("plot_identification"),
    benchmark:
        P.benchmark("plot_identification")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_identification"),
    script:
        "../scripts/step.py"


rule plot_similarity:
    input:
        table=P.pattern("similarity"),
    output:
        png=report(
            P.pattern("similarity_heatmap", ext="png"),
            caption="../report/similarity_heatmap.rst",
            category="{exp}",
            subcategory="similarity",
        ),
        svg=P.pattern("similarity_heatmap", ext="svg"),
    log:
        P.log("plot_similarity"),
    benchmark:
        P.benchmark("plot_similarity")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_similarity"),
    script:
        "../scripts/step.py"


rule plot_sample_efficiency:
    input:
        table=P.pattern("sample_efficiency"),
    output:
        png=report(
            P.pattern("sample_efficiency_figure", ext="png"),
            caption="../report/sample_efficiency_figure.rst",
            category="{exp}",
            subcategory="sample efficiency",
        ),
        svg=P.pattern("sample_efficiency_figure", ext="svg"),
    log:
        P.log("plot_sample_efficiency", "{target}"),
    benchmark:
        P.benchmark("plot_sample_efficiency", "{target}")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_sample_efficiency"),
    script:
        "../scripts/step.py"


rule plot_asymmetry:
    input:
        table=P.pattern("asymmetry"),
    output:
        png=report(
            P.pattern("asymmetry_figure", ext="png"),
            caption="../report/asymmetry_figure.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        svg=P.pattern("asymmetry_figure", ext="svg"),
    log:
        P.log("plot_asymmetry"),
    benchmark:
        P.benchmark("plot_asymmetry")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_asymmetry"),
    script:
        "../scripts/step.py"


rule plot_composition:
    input:
        table=P.pattern("composition"),
    output:
        png=report(
            P.pattern("composition_figure", ext="png"),
            caption="../report/composition_figure.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        svg=P.pattern("composition_figure", ext="svg"),
    log:
        P.log("plot_composition"),
    benchmark:
        P.benchmark("plot_composition")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_composition"),
    script:
        "../scripts/step.py"


rule plot_classifier_view:
    input:
        table=P.pattern("classifier_view"),
    output:
        png=report(
            P.pattern("classifier_view_figure", ext="png"),
            caption="../report/classifier_view_figure.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        svg=P.pattern("classifier_view_figure", ext="svg"),
    log:
        P.log("plot_classifier_view"),
    benchmark:
        P.benchmark("plot_classifier_view")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_classifier_view"),
    script:
        "../scripts/step.py"


rule plot_shared_space:
    input:
        table=P.pattern("shared_space"),
    output:
        png=report(
            P.pattern("shared_space_figure", ext="png"),
            caption="../report/shared_space_figure.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        svg=P.pattern("shared_space_figure", ext="svg"),
    log:
        P.log("plot_shared_space"),
    benchmark:
        P.benchmark("plot_shared_space")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_shared_space"),
    script:
        "../scripts/step.py"


rule plot_index_predicts:
    input:
        table=P.pattern("index_predicts"),
        pairs=P.pattern("index_predicts_pairs"),
    output:
        png=report(
            P.pattern("index_predicts_figure", ext="png"),
            caption="../report/index_predicts_figure.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        svg=P.pattern("index_predicts_figure", ext="svg"),
    log:
        P.log("plot_index_predicts"),
    benchmark:
        P.benchmark("plot_index_predicts")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_index_predicts"),
    script:
        "../scripts/step.py"


rule plot_layer_similarity:
    input:
        table=P.pattern("layer_similarity"),
    output:
        png=report(
            P.pattern("layer_similarity_figure", ext="png"),
            caption="../report/layer_similarity_figure.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        svg=P.pattern("layer_similarity_figure", ext="svg"),
    log:
        P.log("plot_layer_similarity"),
    benchmark:
        P.benchmark("plot_layer_similarity")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_layer_similarity"),
    script:
        "../scripts/step.py"


rule plot_layer_maps:
    input:
        table=P.pattern("layer_maps"),
    output:
        png=report(
            P.pattern("layer_maps_figure", ext="png"),
            caption="../report/layer_maps_figure.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        svg=P.pattern("layer_maps_figure", ext="svg"),
    log:
        P.log("plot_layer_maps"),
    benchmark:
        P.benchmark("plot_layer_maps")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("plot_layer_maps"),
    script:
        "../scripts/step.py"
