"""Resolve a config into experiments and output paths.

The Snakefile builds one :class:`Plan` from the config; rules take their
paths (:meth:`Plan.pattern`, :meth:`Plan.log`, :meth:`Plan.benchmark`) and
their inputs and arguments (:meth:`Plan.inputs`, :meth:`Plan.job`, which
answer from the functions declared beside each rule's step in
:mod:`embmap.steps`) from it and hold no logic of their own.

- :func:`embmap.config.load` validates the config and fills every default;
- the dataset kind's module (:mod:`embmap.data`) and each network's source
  module (:mod:`embmap.models`) check what a schema cannot (paths that must
  exist, a task the source cannot serve), naming the key at fault;
- networks shared between experiments (the same key and definition on the
  same dataset) are trained and extracted once, in the first experiment's
  folder (its *owner*).

Standard library only at import time (see :mod:`embmap.config`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import config as cfg
from . import data, models, tasks
from .config import ConfigError
from .fit import methods as mapmethods
from .fit.methods.ridge import alphas_of

# Every output path, relative to results/EXPERIMENT/; named once, used by rules, steps and tests.
OUTPUTS = {
    "manifest": "data/manifest.csv",
    "stores_checked": "data/stores_checked.json",
    "pairs": "data/pairs.txt",
    "faces": "data/faces.csv",
    "aligned": "aligned/{align}.zarr",
    "model": "models/{network}",
    "store": "embeddings/{network}/{split}.zarr",
    "shard": "fit/shards/{shard}.zarr",
    "blocks": "fit/blocks.zarr",
    "maps": "maps/{method}/{source}",  # one fit job's maps: a method fitted per source (rule fit_maps)
    "method_maps": "maps/{method}",  # one fit job's maps: a method fitted for all pairs (rule fit_method_maps)
    "map": "maps/{method}/{source}/{target}.zarr",
    "similarity": "tables/similarity.csv",
    "sample_efficiency": "tables/sample_efficiency.csv",
    "layer_sample_efficiency": "tables/layer_sample_efficiency.csv",  # analyses: [layers] with sample_sizes
    "similarity_heatmap": "figures/similarity_heatmap.{ext}",
    "methods_figure": "figures/methods.{ext}",
    "sample_efficiency_figure": "figures/sample_efficiency/{target}.{ext}",
}


def _task_outputs(common: dict) -> dict:
    """The tables and figures of every task, named in its module (:mod:`embmap.tasks`). Tasks that share a
    rule declare its outputs alike (the same name at the same path); one name at two paths is refused."""
    out, owner = {}, {}
    for task in tasks.TASKS.values():
        analysed = {name: path for outputs in task.analyses.values() for name, path in outputs.items()}
        for name, path in {**task.tables, **task.figures, **analysed}.items():
            if name in common:
                raise ValueError(f"task {task.name}: output {name!r} is a name of the workflow's own "
                                 f"({common[name]}); give the table another name")
            if name in out and out[name] != path:
                raise ValueError(f"task {task.name}: output {name!r} at {path}, but task {owner[name]} names it "
                                 f"{out[name]}; a name is one path (tasks that share a rule declare its outputs alike)")
            out.setdefault(name, path)
            owner.setdefault(name, task.name)
    return out


OUTPUTS.update(_task_outputs(OUTPUTS))
FIGURE_FORMATS = ("png", "svg")
# the heatmaps of every task (embmap.tasks): the matrix they draw and how their axes read
HEATMAPS = {name: spec for t in tasks.TASKS.values() for name, spec in t.heatmaps.items()}
PAIRS_SPLIT = tasks.open_set.PAIRS_SPLIT


@dataclass(frozen=True)
class NetworkPlan:
    """One network of one experiment as the run treats it.

    ``spec`` is the network's config block with defaults filled in. ``owner``
    is the experiment whose results folder holds this network's model and
    stores; it differs from the experiment using the network when an earlier
    experiment already extracts the same network on the same data.
    """

    key: str
    spec: dict
    owner: str

    @property
    def source(self) -> str:
        return self.spec["source"]

    @property
    def label(self) -> str:
        return self.spec.get("label", self.key + ("*" if self.control else ""))

    @property
    def control(self) -> bool:
        return self.spec["control"]

    @property
    def trained_here(self) -> bool:
        return models.SOURCES[self.source].trains

    @property
    def extracted_here(self) -> bool:
        return models.SOURCES[self.source].open is not None


@dataclass
class Experiment:
    """One experiment of the config (``spec``: its block with defaults filled in)."""

    name: str
    spec: dict
    networks: dict[str, NetworkPlan] = field(default_factory=dict)
    pairs_file: str | None = None  # open_set: the pairs file (written by the workflow for digit_pairs)

    @property
    def task(self) -> str:
        return self.spec["task"]

    @property
    def task_def(self) -> tasks.Task:
        """What the task asks (:mod:`embmap.tasks`)."""
        return tasks.get(self.task)

    @property
    def kind(self) -> data.Kind:
        return data.KINDS[self.spec["dataset"]["kind"]]

    @property
    def dataset(self) -> dict:
        """The dataset block; a kind whose pairs file the workflow writes also names that file."""
        d = self.spec["dataset"]
        if self.kind.pairs == "written" and self.pairs_file:
            return {**d, "pairs": self.pairs_file}
        return d

    @property
    def fit_split(self) -> str:
        return self.spec["fit_split"]

    @property
    def eval_split(self) -> str:
        return self.spec["eval_split"]

    @property
    def mapping(self) -> dict:
        return self.spec["mapping"]

    @property
    def alphas(self) -> list[float]:
        """Candidate ridge penalties; more than one means cross-validation."""
        return alphas_of(self.mapping["alpha"])

    @property
    def cv_folds(self) -> int:
        """Folds the closed-set pass keeps blocks for: ``mapping.folds`` when alpha is a list, else 1."""
        return int(self.mapping["folds"]) if len(self.alphas) > 1 else 1

    @property
    def shards(self) -> int:
        """Jobs the pass over the fit split is cut into (``mapping.shards``)."""
        return int(self.mapping["shards"])

    @property
    def methods(self) -> list[str]:
        """Map methods (``mapping.methods``), in the order of :data:`embmap.fit.methods.METHODS`."""
        return [m.name for m in mapmethods.fitted(self.mapping["methods"])]

    @property
    def sample_sizes(self) -> list[int]:
        """The nested fit-sample counts below the whole split (``all`` is the whole split's own maps)."""
        return sorted(int(v) for v in self.mapping["sample_sizes"] if v != "all")

    @property
    def sample_efficiency(self) -> bool:
        return self.task_def.fit_pass and bool(self.mapping["sample_sizes"])

    @property
    def indices(self) -> list[str]:
        return list(self.spec["similarity"]["indices"]) if self.task_def.fit_pass else []

    @property
    def analyses(self) -> list[str]:
        """The task's optional analyses (:attr:`embmap.tasks.Task.analyses`) the experiment lists (``analyses``), in the task's order."""
        wanted = self.spec.get("analyses", [])
        return [a for a in self.task_def.analyses if a in wanted]

    @property
    def layerwise(self) -> bool:
        """The experiment's ``analyses`` lists ``layers``: every layer the stores hold is a node of the pass."""
        return "layers" in self.analyses

    @property
    def store(self) -> dict:
        return self.spec["store"]

    @property
    def identification(self) -> dict:
        return self.spec["identification"]

    @property
    def splits(self) -> list[str]:
        return self.task_def.splits(self)

    @property
    def preprocessing(self) -> dict:
        return self.spec["preprocessing"]


@dataclass(frozen=True)
class CheckContext:
    """What a dataset kind's or a source's config check may ask about the experiment it is in."""

    plan: "Plan"
    experiment: Experiment
    check_paths: bool

    def path(self, p: str) -> Path:
        return self.plan.path_of(p)

    @property
    def task(self) -> str:
        return self.experiment.task

    @property
    def needs_classifier(self) -> bool:
        """Whether the experiment's task reads the networks' classifiers (:attr:`embmap.tasks.Task.classifier`)."""
        return self.experiment.task_def.classifier


class Plan:
    """Everything the Snakefile needs to know about a config.

    Parameters
    ----------
    config : dict
        The config as loaded (validated and completed with defaults here).
    root : path, default "."
        Directory that relative paths in the config are resolved against
        (the snakemake working directory).
    check_paths : bool, default True
        Check that local files the config names exist.
    files : list of paths, optional
        The config files the config was read from (the Snakefile passes
        ``workflow.configfiles``): read again strictly, so that a key given
        twice in one of them is an error naming it and its lines
        (:func:`embmap.config.read_file`) instead of the last one winning.
    """

    def __init__(self, config: dict, root=".", check_paths: bool = True, files=()):
        cfg.check_files(files)
        self.config = cfg.load(config)
        self.root = Path(root)
        # `~` and $VARS expanded as in every other path; "results/" and "./results" are "results"
        self.results = os.path.normpath(cfg.expand(self.config["results"]))
        self.experiments: dict[str, Experiment] = {}
        owners: dict[tuple[str, str], tuple[str, tuple]] = {}
        for name, spec in self.config["experiments"].items():
            exp = Experiment(name, spec)
            ctx = CheckContext(self, exp, check_paths)
            self._check_experiment(exp, ctx)
            dkey = json.dumps(exp.dataset, sort_keys=True)
            nets = spec["networks"]
            # controls last, as in the paper's tables (their rows and columns close the matrix)
            ordered = [k for k in nets if not nets[k]["control"]] + [k for k in nets if nets[k]["control"]]
            for key in ordered:
                nspec = nets[key]
                where = f"experiments.{name}.networks.{key}"
                self._check_network(where, nspec, ctx)
                owner = name
                if models.SOURCES[nspec["source"]].open is not None:
                    defines = (nspec, resolve_preprocessing(nspec, exp))
                    shared = owners.get((dkey, key))
                    if shared is None:
                        owners[(dkey, key)] = (name, defines)
                    elif shared[1] != defines:
                        raise ConfigError(
                            f"{where}: experiment {shared[0]!r} defines network {key!r} differently on the "
                            "same dataset; a network key names one network per dataset, rename one of them"
                        )
                    else:
                        owner = shared[0]
                exp.networks[key] = NetworkPlan(key, nspec, owner)
            self._check_distinct(exp)
            self.experiments[name] = exp
        if check_paths and Path(self.results).exists() and not Path(self.results).is_dir():
            raise ConfigError(f"results: {self.results} is a file; results must name a folder")

    # -- checks -----------------------------------------------------------------
    @classmethod
    def or_exit(cls, config: dict, root=".", files=()) -> "Plan":
        """The plan of ``config``, or, when the config is at fault, its one-line error on standard error and exit
        status 1 (what the Snakefile calls: a traceback through the plan would bury the key at fault)."""
        import sys

        try:
            return cls(config, root, files=files)
        except ConfigError as e:
            print(f"embmap: config error: {e}", file=sys.stderr)
            raise SystemExit(1) from None

    def _check_distinct(self, exp: Experiment) -> None:
        """Two networks of an experiment may share neither a display label nor their stores (a copy-paste slip)."""
        labels, paths = {}, {}
        for key, net in exp.networks.items():
            where = f"experiments.{exp.name}.networks.{key}"
            if net.label in labels:
                raise ConfigError(f"{where}.label: {net.label!r} is also the label of network {labels[net.label]!r}; "
                                  "tables and figures would not tell them apart")
            labels[net.label] = key
            if not net.extracted_here:
                folder = self.path_of(net.spec["path"]).resolve()
                if folder in paths:
                    raise ConfigError(f"{where}.path: network {paths[folder]!r} reads the same stores ({folder}); "
                                      "each network brings its own")
                paths[folder] = key

    def _check_experiment(self, exp: Experiment, ctx: CheckContext) -> None:
        where = f"experiments.{exp.name}"
        kind = exp.kind
        if exp.task not in kind.tasks and exp.task_def.like not in kind.tasks:
            raise ConfigError(f"{where}.dataset.kind: {kind.name!r} serves task {' or '.join(kind.tasks)}, "
                              f"not {exp.task}{kind.task_hint}")
        if exp.task_def.check is not None:
            exp.task_def.check(self, exp, where, ctx)
        kind.check(f"{where}.dataset", exp.spec["dataset"], ctx)

    def _check_network(self, where: str, spec: dict, ctx: CheckContext) -> None:
        exp, source = ctx.experiment, models.SOURCES[spec["source"]]
        kind = exp.kind
        if exp.task_def.classifier and not source.classifier:
            raise ConfigError(f"{where}.source: {source.name!r} networks have no classifier, which task {exp.task} "
                              "reads; use task open_set")
        if source.open is not None and not kind.images:
            raise ConfigError(f"{where}.source: dataset kind {kind.name!r} has no images; it takes zarr networks only")
        if source.trains and not kind.trains:
            raise ConfigError(f"{where}.source: 'train' trains the demo architectures on digits only; dataset kind "
                              f"{kind.name!r} {kind.train_hint}")
        if (kind.image_files and source.open is not None and not source.sized
                and not resolve_preprocessing(spec, exp).get("input_size")):
            raise ConfigError(f"{where}.input_size: networks reading image files need their input size "
                              "(or the experiment's preprocessing.input_size)")
        if spec.get("flip") and not exp.task_def.pairs:
            raise ConfigError(f"{where}.flip: the test-time flip adds a mirrored crop's embedding for face "
                              "verification (task open_set); a closed_set classifier reads the network's own features")
        if "align" in spec and not kind.faces:
            raise ConfigError(f"{where}.align: face alignment needs photographs of faces (dataset kind lfw), "
                              f"not {kind.name!r}")
        if spec.get("layers") and not source.layers:
            can = ", ".join(n for n, s in models.SOURCES.items() if s.layers and s.open is not None)
            raise ConfigError(f"{where}.layers: source {source.name!r} cannot extract layers beside the embedding "
                              f"(sources that can: {can})")
        if "layer_reduction" in spec and not spec.get("layers"):
            raise ConfigError(f"{where}.layer_reduction: says how layers are reduced, but the network names no layers")
        source.check(where, spec, ctx)

    def path_of(self, p: str) -> Path:
        """A path of the config: ``~`` and ``$VARS`` expanded, relative paths under the plan's root."""
        q = cfg.expand(p)
        return q if q.is_absolute() else self.root / q

    # -- paths ------------------------------------------------------------------
    def exp_dir(self, exp: str) -> str:
        return f"{self.results}/{exp}"

    def pattern(self, name: str, **fixed) -> str:
        """The path pattern of output ``name`` with Snakemake wildcards (``{exp}`` and those of the output).

        ``fixed`` fills some wildcards now (``ext="png"`` for a figure).
        """
        rel = OUTPUTS[name]
        for k, v in fixed.items():
            rel = rel.replace("{" + k + "}", str(v))
        return f"{self.results}/{{exp}}/{rel}"

    def path(self, name: str, exp: str, **wildcards) -> str:
        """Output ``name`` of experiment ``exp`` with every wildcard filled."""
        return self.pattern(name).format(exp=exp, **wildcards)

    def log(self, rule: str, sub: str = "") -> str:
        """The log of a rule's job: ``results/{exp}/logs/RULE[/SUB].log`` (SUB names the job's wildcards)."""
        return f"{self.results}/{{exp}}/logs/{rule}{'/' + sub if sub else ''}.log"

    def benchmark(self, rule: str, sub: str = "") -> str:
        """The benchmark file of a rule's job, spelled as its log: ``results/{exp}/benchmarks/RULE[/SUB].tsv``."""
        return f"{self.results}/{{exp}}/benchmarks/{rule}{'/' + sub if sub else ''}.tsv"

    def threads(self, n: int):
        """A rule's ``threads``: ``n``, or 1 for an experiment on a small dataset held in memory (``Kind.small``:
        the bundled digits), whose jobs are seconds of work: such a job then holds no core it would leave idle,
        and two run side by side. No result depends on the count (docs/reproducibility.md, "Determinism")."""
        return lambda wc: 1 if self.experiments[wc.exp].kind.small else n

    def manifest(self, exp: str) -> str:
        return self.path("manifest", exp)

    def model_dir(self, exp: str, network: str) -> str:
        return self.path("model", self.network(exp, network).owner, network=network)

    def store(self, exp: str, network: str, split: str) -> str:
        """Path of the store holding ``network``'s embeddings of ``split`` for ``exp``."""
        net = self.network(exp, network)
        if not net.extracted_here:
            return str(self.path_of(net.spec["path"]) / f"{split}.zarr")
        return self.path("store", net.owner, network=network, split=split)

    def stores(self, exp: str, split: str) -> dict[str, str]:
        return {k: self.store(exp, k, split) for k in self.experiments[exp].networks}

    def shard_partials(self, exp: str) -> list[str]:
        """The pass's per-shard partial block stores (temporary), one per shard."""
        return [self.path("shard", exp, shard=j) for j in range(self.experiments[exp].shards)]

    def aligned(self, exp: str, network: str) -> str | None:
        """The cached face crops a network reads (``aligned/KEY.zarr`` of its owner), or None."""
        net = self.network(exp, network)
        if "align" not in net.spec:
            return None
        return self.path("aligned", net.owner, align=align_key(net.spec["align"]))

    def pairs_file(self, exp: str) -> str:
        """The pairs file of an open_set experiment."""
        p = self.experiments[exp].pairs_file
        if p is None:
            raise ConfigError(f"experiments.{exp}: task {self.experiments[exp].task!r} has no pairs file")
        return p

    def outputs(self, exp: str) -> list[str]:
        """Every table and figure of an experiment, in the order its task declares (:mod:`embmap.tasks`), then
        the optional analyses (similarity, sample efficiency, the task's ``analyses``) the experiment asks for."""
        e = self.experiments[exp]
        tables, figures = list(e.task_def.tables), list(e.task_def.figures)
        if e.task_def.classifier and len(e.methods) > 1:
            figures.append("methods_figure")
        if e.indices:
            tables.append("similarity")
            figures.append("similarity_heatmap")
        if e.sample_efficiency:
            tables.append("sample_efficiency")
        for analysis in e.analyses:
            for name, path in e.task_def.analyses[analysis].items():
                (figures if "{ext}" in path else tables).append(name)
        if e.sample_efficiency and e.layerwise:
            tables.append("layer_sample_efficiency")
        out = [self.path(t, exp) for t in tables] + [self.path(f, exp, ext=x) for f in figures for x in FIGURE_FORMATS]
        if e.sample_efficiency:
            out += [self.path("sample_efficiency_figure", exp, target=b, ext=x) for b in e.networks
                    for x in FIGURE_FORMATS]
        return out

    def targets(self) -> list[str]:
        return [p for name in self.experiments for p in self.outputs(name)]

    # -- lookups used by rules --------------------------------------------------
    def owned_stores(self) -> list[tuple[str, str, str]]:
        """(experiment, network, split) of every store this run extracts itself."""
        seen = []
        for name, exp in self.experiments.items():
            for key, net in exp.networks.items():
                if net.extracted_here and net.owner == name:
                    seen += [(name, key, s) for s in exp.splits]
        return seen

    def network(self, exp: str, network: str) -> NetworkPlan:
        try:
            return self.experiments[exp].networks[network]
        except KeyError:
            raise ConfigError(f"experiments.{exp}.networks.{network}: not in the config") from None

    def preprocessing(self, exp: str, network: str) -> dict:
        """The resolved preprocessing of ``network`` in ``exp`` (see :func:`resolve_preprocessing`)."""
        return resolve_preprocessing(self.network(exp, network).spec, self.experiments[exp])

    def labels(self, exp: str) -> dict[str, str]:
        return {k: n.label for k, n in self.experiments[exp].networks.items()}

    def controls(self, exp: str) -> list[str]:
        return [k for k, n in self.experiments[exp].networks.items() if n.control]

    # -- rule inputs ------------------------------------------------------------
    def inputs(self, rule: str):
        """An input function for ``rule``: wildcards -> {name: path or list of paths}, from the rule's step
        (:data:`embmap.steps.INPUTS`, declared beside the step)."""
        from . import steps

        fn = steps.INPUTS[rule]
        return lambda wc: fn(self, wc)

    def job(self, rule: str):
        """The arguments of ``rule``'s step as a params function of the wildcards (:data:`embmap.steps.JOBS`,
        declared beside the step): everything it needs that is not a path of its inputs or outputs."""
        from . import steps

        fn = steps.JOBS[rule]
        return lambda wc: fn(self, wc)

    def map_dirs(self, exp: str, methods: list[str] | None = None) -> list[str]:
        """The folders the fit jobs of ``methods`` (default: the experiment's) write: ``maps/METHOD/SOURCE/``
        per source network for a method fitted per source, ``maps/METHOD/`` for one fitted for all pairs."""
        e = self.experiments[exp]
        out = []
        for m in mapmethods.fitted(e.methods if methods is None else methods):
            if m.jobs == mapmethods.SOURCE_JOBS:
                out += [self.path("maps", exp, method=m.name, source=a) for a in e.networks]
            else:
                out.append(self.path("method_maps", exp, method=m.name))
        return out

    def method_regex(self, jobs: str) -> str:
        """The ``{method}`` wildcard of the fit rule for methods fitted per ``jobs`` (``source`` or ``pairs``)."""
        names = [m.name for m in mapmethods.METHODS.values() if m.jobs == jobs]
        return f"({'|'.join(names)})" if names else "(?!)"

    def map_paths(self, exp: str, methods: list[str] | None = None) -> dict:
        """{method: {source: {target: map store}}} of ``methods`` (default: the experiment's)."""
        names = list(self.experiments[exp].networks)
        return {m: {a: {b: self.path("map", exp, method=m, source=a, target=b) for b in names if b != a}
                    for a in names}
                for m in (self.experiments[exp].methods if methods is None else methods)}

    def lock_dirs(self) -> list[str]:
        """The experiment folders this run writes: each is locked for the run (:mod:`embmap.runlock`)."""
        return [str(Path(self.exp_dir(e)).absolute()) for e in self.experiments]


def align_key(spec: dict) -> str:
    """A file name for an ``align`` block (defaults filled): ``facenet160m32``, ``arcface112``."""
    spec = cfg.defaults("align", spec)
    if spec["style"] == "facenet":
        return f"facenet{spec['size']}m{spec['margin']}"
    return f"arcface{spec['size']}"


def resolve_preprocessing(spec: dict, exp: Experiment) -> dict:
    """``input_size``, ``input_range`` and, for image files, ``crop_fraction`` of one network.

    The experiment's ``preprocessing.input_size`` (the paper's single 331 crop)
    replaces the network's own size unless the network is ``fixed_input``;
    ``crop_fraction`` comes from the network, else the experiment. Unset
    values are left out.
    """
    common = exp.preprocessing
    out = {}
    size = spec.get("input_size")
    if common.get("input_size") and not spec.get("fixed_input", False):
        size = common["input_size"]
    if size:
        out["input_size"] = [int(v) for v in size]
    if spec.get("input_range"):
        out["input_range"] = [float(v) for v in spec["input_range"]]
    if exp.kind.image_files:
        out["crop_fraction"] = float(spec.get("crop_fraction", common["crop_fraction"]))
    return out
