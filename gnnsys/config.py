"""Training configuration: one dataclass, one place. The CLI is a thin layer over it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gnnsys.errors import ConfigError

TRAINERS = ("backprop", "forward", "pipe")
SAMPLERS = ("full", "saint-node", "saint-edge", "saint-rw", "saint-mrw")
INITS = ("default", "xavier", "kaiming", "kaiming_fan_out", "virgo", "virgo_forward", "virgo_backward")
NODE_FORWARD_VARIANTS = ("ff-la", "ff-vn", "sf", "sf-top2input", "sf-top2loss")
LINK_FORWARD_VARIANTS = ("forward-ce", "forward-ff", "top-down")
#: Class virtual-node links of the ForwardGNN variants: both ways, or member -> class node only.
VN_EDGE_DIRECTIONS = ("both", "to-vn")
#: GraphSAINT edges pre-sampling never saw: the original's clipped weight 1e4, or counted once (C_v).
SAINT_UNSEEN_EDGES = ("clip", "once")
#: The default is ``once``: on Cora and CiteSeer it gains ~2 points with the random-walk sampler and
#: it removes the loss spikes (up to 96) of saint-edge on ogbl-ddi; ``clip`` is the paper-exact option.
DEFAULT_SAINT_UNSEEN_EDGES = "once"
#: Where training reads node features from (``gnnsys.storage.build_feature_store``).
FEATURE_KINDS = ("memory", "tiered", "disk")
#: Layouts of the disk tier (``--features disk``): DiskGNN's packed file per epoch, or the plain rows.
DISK_LAYOUTS = ("packed", "rows")
#: Evaluation: ``layerwise`` (layer by layer over all nodes, in chunks; the default when features
#: are on disk) or ``full`` (one full-graph batch, every feature row in memory).
EVAL_MODES = ("layerwise", "full")
#: Cache policies of the tiered store that training can use (``gnnsys.storage.CACHE_POLICIES``; the
#: oracles ``belady`` and ``best-static`` need the whole trace and serve the cache benchmark only).
CACHE_POLICIES = ("static-degree", "static-pagerank", "static-saint", "lru", "s3fifo", "hybrid", "planned")
#: The tiered store's policy when none is named: Belady inside a window of batches sampled ahead.
DEFAULT_CACHE_POLICY = "planned"
#: GNNPipe (``--trainer pipe``): layer-parallel pipeline or the graph-parallel baseline.
PARALLEL_SCHEMES = ("layer", "graph")
#: How a pipeline stage learns: end-to-end backprop, or ForwardGNN's SF local loss per layer.
PIPE_TRAIN_MODES = ("backprop", "sf")
DIST_BACKENDS = ("auto", "gloo", "nccl")
#: ``--resume``: continue from the newest usable checkpoint (which must exist), or continue when
#: there is one and start fresh (saying so) when the directory holds none.
RESUME_MODES = ("latest", "auto")


def default_vn_edges(variant: str) -> str:
    """The class virtual-node links a ForwardGNN variant uses unless told otherwise.

    SF: ``"to-vn"``. A training node that reads its own class node sees its label, a test
    node never does; one-way links remove that mismatch. Over the whole measured grid (Cora
    and CiteSeer; GCN, SAGE and GAT at depths 1-4; 5 random splits and the public split)
    one-way links had the higher mean validation accuracy in 34 of 48 comparisons, and put
    SF within 2 points of backprop (or above it) in all 24 random-split cells, against 20 of
    24 with two-way links (``docs/forwardgnn.md``). FF-VN needs ``"both"`` (its positive
    and negative graphs differ only in what a member reads); the top-down variants keep the
    paper's ``"both"``, the setting they were measured with."""
    return "to-vn" if variant == "sf" else "both"


def check_device(device: str, flag: str = "--device") -> None:
    """``ConfigError`` unless ``device`` is ``cpu``, ``cuda`` or ``cuda:N`` and present here."""
    import re

    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ConfigError(f"{flag} must be 'cpu', 'cuda' or 'cuda:N', not {device!r}")
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
        raise ConfigError(f"{flag} {device}: CUDA is not available here ({why}; torch {torch.__version__}); "
                          f"use {flag} cpu")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"{flag} {device}: only {torch.cuda.device_count()} CUDA device(s) here "
                          f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")


@dataclass
class TrainConfig:
    """Everything ``gnnsys train`` takes. ``None`` means "the dataset's default"
    (``DATASET_DEFAULTS``, then ``GENERIC_DEFAULTS``); ``resolved(dataset)`` fills them."""

    dataset: str = "synthetic-sbm"
    data_root: str | None = None
    layer: str | None = None
    layers: int | None = None
    hidden: int | None = None
    epochs: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    dropout: float | None = None
    lr_decay_step: int | None = None  # halve (x lr_decay) the learning rate every this many epochs
    lr_decay: float = 0.5
    grad_clip: float | None = None  # clip each part's (encoder, layers, head) gradient norm to this
    seed: int = 0
    device: str = "cpu"
    trainer: str = "backprop"
    init: str = "default"
    split: str = "public"  # node tasks: "public" (the dataset's own) or "random" (64/16/20 from seed)
    # graph and link tasks
    batch_size: int | None = None
    folds: int = 10  # TU graph classification: stratified k-fold CV
    norm: str | None = None  # None or "batch"
    readout: str | None = None
    link_head: str | None = None
    num_neg: int = 1
    # model selection: "metric" (validation score, ties broken by validation loss) or "loss"
    select_by: str = "metric"
    patience: int | None = None
    eval_every: int = 1
    # GraphSAINT
    sampler: str = "full"
    saint_budget: int | None = None  # node sampler: nodes drawn; edge sampler: edges drawn; MRW: steps
    saint_roots: int | None = None  # random walk roots
    saint_walk_length: int = 2
    saint_frontier: int | None = None  # MRW frontier size (None: min(1000, |V_train| / 4))
    saint_coverage: float = 50.0
    saint_graph: str | None = None  # "train" (inductive) or "full" (transductive); None: per dataset
    saint_norm_cache: str | None = None  # file to save/load the normalization statistics
    # edges unseen in pre-sampling: "once" (counted once, C_v; the default) or "clip" (the paper's 1e4)
    saint_unseen_edges: str = DEFAULT_SAINT_UNSEEN_EDGES
    num_workers: int = 0
    # loading pipeline: batches prepared ahead in a worker thread (None: on when it pays, 0: off)
    prefetch: int | None = None
    # feature store: "memory" (the loader's) or "tiered" (a cache tier in front of the host
    # tier); the cache holds cache_fraction of the rows, placed by cache_policy, on cache_device
    # (None: the compute device); cache_window: batches the planned cache sees ahead
    features: str = "memory"
    cache_fraction: float = 0.1
    cache_policy: str | None = None
    cache_device: str | None = None
    cache_window: int | None = None
    # --- out-of-core features (--features disk): a .npy feature file read by the store's own
    # I/O, feature memory (cache tier + read buffers) within memory_budget ("2GB"); packed
    # files go to cache_dir (None: $GNNSYS_CACHE); eval_mode None: layerwise when on disk
    feature_file: str | None = None
    memory_budget: str | None = None
    disk_layout: str = "packed"
    cache_dir: str | None = None
    eval_mode: str | None = None
    # --- end out-of-core features
    # ForwardGNN
    forward_variant: str | None = None
    forward_tau: float | None = None
    forward_theta: float = 2.0
    forward_timesteps: int = 10
    # class virtual-node links: "both" (member <-> virtual node, the paper's default) or
    # "to-vn" (member -> virtual node only: a member's state never reads its class node);
    # None: the variant's default (``default_vn_edges``)
    forward_vn_edges: str | None = None
    # deep stacks: a layer that keeps the width adds its input (h + f(h))
    residual: bool = False
    # GNNPipe (--trainer pipe, gnnsys.pipeline)
    stages: int | None = None  # ranks: pipeline stages (layer) or partitions (graph); None: WORLD_SIZE or 1
    chunks: int | None = None  # graph chunks flowing through the stages; None: 1 for one stage, else 2 x stages
    parallel: str = "layer"  # "layer" (GNNPipe) or "graph" (graph-parallel baseline, halo exchange per layer)
    pipe_stale: bool = True  # read not-yet-computed chunks from last epoch's embeddings (False: exact, no overlap)
    pipe_warmup: int = 0  # first epochs run exact (no staleness)
    pipe_smoothing: float = 0.0  # PipeGCN-style history smoothing gamma (0: off; PipeGCN's code uses 0.95)
    pipe_train: str = "backprop"  # "backprop" or "sf" (ForwardGNN SF local losses: no gradient crosses a stage)
    backend: str = "auto"  # torch.distributed backend: auto (nccl on cuda, gloo on cpu), gloo, nccl
    dist_timeout: float = 60.0  # seconds a rank waits for a peer before failing with the peer's rank named
    threads_per_rank: int | None = None  # torch threads per rank (None: cores / local ranks)
    # ---- layer arguments (issue 17): keyword arguments of every layer's constructor
    # (``--layer-arg NAME=VALUE``; merged over ``extra["layer_kwargs"]``, which they win over)
    layer_args: dict[str, Any] = field(default_factory=dict)
    # ---- end layer arguments
    # checkpoints (``gnnsys.checkpoint``): written to checkpoint_dir every checkpoint_every
    # epochs and at the end; resume: None (start fresh), "latest" (continue from the newest
    # usable checkpoint, which must exist) or "auto" (continue if there is one, else start fresh)
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1
    resume: str | None = None
    # the trained model and what rebuilds it (``gnnsys.saved_model``)
    save_model: str | None = None
    # output
    out: str | None = None
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def layer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every layer constructor gets: ``extra["layer_kwargs"]`` (the
        experiments' older route) updated with ``layer_args``."""
        return {**(self.extra.get("layer_kwargs") or {}), **self.layer_args}

    def validate(self) -> None:
        """Raise ``ConfigError`` for values no dataset could take."""
        if self.trainer not in TRAINERS:
            raise ConfigError(f"unknown trainer {self.trainer!r}; choose one of {TRAINERS}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of {SAMPLERS}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {INITS}")
        if self.forward_variant is not None:
            if self.trainer != "forward":
                raise ConfigError("--forward-variant needs --trainer forward")
            if self.forward_variant not in NODE_FORWARD_VARIANTS + LINK_FORWARD_VARIANTS:
                raise ConfigError(f"unknown forward variant {self.forward_variant!r}; node tasks take "
                                  f"{NODE_FORWARD_VARIANTS}, link tasks {LINK_FORWARD_VARIANTS}")
        if self.forward_vn_edges is not None and self.forward_vn_edges not in VN_EDGE_DIRECTIONS:
            raise ConfigError(f"--forward-vn-edges must be one of {VN_EDGE_DIRECTIONS}, not {self.forward_vn_edges!r}")
        if self.saint_unseen_edges not in SAINT_UNSEEN_EDGES:
            raise ConfigError(f"--saint-unseen-edges must be one of {SAINT_UNSEEN_EDGES}, "
                              f"not {self.saint_unseen_edges!r}")
        if self.select_by not in ("metric", "loss"):
            raise ConfigError(f"select_by must be 'metric' or 'loss', not {self.select_by!r}")
        if self.split not in ("public", "random"):
            raise ConfigError(f"--split must be 'public' or 'random', not {self.split!r}")
        for name in ("layers", "hidden", "epochs", "batch_size"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.features not in FEATURE_KINDS:
            raise ConfigError(f"--features must be one of {FEATURE_KINDS}, not {self.features!r}")
        if not 0 <= self.cache_fraction <= 1:
            raise ConfigError(f"--cache-fraction must be a fraction of the rows in [0, 1], got {self.cache_fraction}")
        if self.cache_policy is not None and self.cache_policy not in CACHE_POLICIES:
            raise ConfigError(f"unknown --cache-policy {self.cache_policy!r}; choose one of {CACHE_POLICIES}")
        if self.cache_window is not None and self.cache_window < 1:
            raise ConfigError(f"--cache-window must be >= 1 batch, got {self.cache_window}")
        if self.features == "memory" and (self.cache_policy or self.cache_device or self.cache_window):
            raise ConfigError("--cache-policy, --cache-device and --cache-window need --features tiered")
        self._validate_disk()
        if self.prefetch is not None and self.prefetch < 0:
            raise ConfigError(f"--prefetch must be >= 0 batches (0 turns it off), got {self.prefetch}")
        self._validate_pipe()
        self._validate_values()
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"--grad-clip must be > 0 (a maximum gradient norm), got {self.grad_clip}; "
                              "leave it out for no clipping")
        self._validate_run()

    def _validate_run(self) -> None:
        """Checkpoint, resume and saved-model options (``--checkpoint-dir``, ``--resume``,
        ``--save-model``)."""
        every = self.checkpoint_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"--checkpoint-every must be a whole number of epochs >= 1, got {every!r}")
        if self.resume is not None and self.resume not in RESUME_MODES:
            raise ConfigError(f"--resume takes no value or one of {RESUME_MODES}, not {self.resume!r}")
        if self.resume is not None and not self.checkpoint_dir:
            raise ConfigError("--resume continues from the checkpoints in --checkpoint-dir DIR; add --checkpoint-dir")
        if self.trainer == "pipe" and self.save_model and self.pipe_train == "sf":
            raise ConfigError(
                "--save-model does not work with --trainer pipe --pipe-train sf yet: its layers are ForwardGNN SF "
                "layers trained all at once, which no saved-model kind rebuilds; use --pipe-train backprop (or "
                "--trainer forward --forward-variant sf) to save the model")

    def _validate_disk(self) -> None:
        """The out-of-core fields (``--features disk``)."""
        if self.eval_mode is not None and self.eval_mode not in EVAL_MODES:
            raise ConfigError(f"--eval must be one of {EVAL_MODES}, not {self.eval_mode!r}")
        if self.features != "disk":
            given = [k for k, v in (("feature-file", self.feature_file), ("memory-budget", self.memory_budget),
                                    ("cache-dir", self.cache_dir)) if v is not None]
            if self.disk_layout != "packed":
                given.append("disk-layout")
            if given:
                raise ConfigError(f"--{given[0]} needs --features disk (features read from a file on disk)")
            return
        if not self.feature_file or not self.memory_budget:
            raise ConfigError("--features disk needs --feature-file PATH.npy (one row per node) and --memory-budget "
                              "SIZE (e.g. 2GB: cache tier + read buffers)")
        if self.disk_layout not in DISK_LAYOUTS:
            raise ConfigError(f"--disk-layout must be one of {DISK_LAYOUTS}, not {self.disk_layout!r}")
        if self.sampler == "full":
            raise ConfigError("--features disk trains on mini-batches whose rows fit the budget: pick a GraphSAINT "
                              "--sampler (saint-rw, saint-node, ...); full-graph training reads every row every step")
        if self.cache_device not in (None, "cpu") or self.cache_window is not None:
            raise ConfigError("--features disk keeps its cache tier in host memory under --memory-budget; leave "
                              "--cache-device and --cache-window out")
        from gnnsys.storage.budget import parse_bytes

        parse_bytes(self.memory_budget)

    # ---- option values (issue 17, item 8): every invalid value is a ConfigError naming the flag
    def _validate_values(self) -> None:
        """Numeric ranges, the device and the layer arguments."""
        if not isinstance(self.layer_args, dict) or not all(isinstance(k, str) and k.isidentifier()
                                                             for k in self.layer_args):
            raise ConfigError(f"layer_args must map argument names to values, got {self.layer_args!r} "
                              "(on the command line: --layer-arg NAME=VALUE)")
        if self.seed < 0 or self.seed >= 2**32:
            raise ConfigError(f"--seed must be in [0, 2**32), got {self.seed}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        for name, lo in (("num_neg", 1), ("folds", 2), ("eval_every", 1), ("saint_walk_length", 1),
                         ("forward_timesteps", 1), ("num_workers", 0)):
            v = getattr(self, name)
            if v < lo:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= {lo}, got {v}")
        for name in ("patience", "saint_budget", "saint_roots", "saint_frontier", "lr_decay_step"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
        if not self.saint_coverage > 0:
            raise ConfigError(f"--saint-coverage must be > 0 (samples per node), got {self.saint_coverage}")
        if self.saint_graph is not None and self.saint_graph not in ("train", "full"):
            raise ConfigError(f"--saint-graph must be 'train' or 'full', not {self.saint_graph!r}")
        if self.forward_tau is not None and not self.forward_tau > 0:
            raise ConfigError(f"--forward-tau must be > 0, got {self.forward_tau}")
        if self.norm not in (None, "none", "batch"):
            raise ConfigError(f"norm must be None or 'batch', not {self.norm!r}")
        if self.link_head is not None and self.link_head not in ("dot", "mlp"):
            raise ConfigError(f"--link-head must be 'dot' or 'mlp', not {self.link_head!r}")
        check_device(self.device, "--device")
        if self.cache_device is not None:
            check_device(self.cache_device, "--cache-device")
    # ---- end option values

    def _validate_pipe(self) -> None:
        """The GNNPipe fields (``--trainer pipe``)."""
        if self.trainer != "pipe":
            given = [k for k, v in (("stages", self.stages), ("chunks", self.chunks)) if v is not None]
            given += [k for k, v, d in (("parallel", self.parallel, "layer"),
                                        ("pipe-train", self.pipe_train, "backprop")) if v != d]
            if given:
                raise ConfigError(f"--{given[0]} needs --trainer pipe (GNNPipe); add it or leave --{given[0]} out")
            return
        if self.parallel not in PARALLEL_SCHEMES:
            raise ConfigError(f"--parallel must be one of {PARALLEL_SCHEMES}, not {self.parallel!r}")
        if self.pipe_train not in PIPE_TRAIN_MODES:
            raise ConfigError(f"--pipe-train must be one of {PIPE_TRAIN_MODES}, not {self.pipe_train!r}")
        if self.pipe_train == "sf" and self.parallel != "layer":
            raise ConfigError("--pipe-train sf trains each pipeline stage on local losses; it needs --parallel layer")
        if self.backend not in DIST_BACKENDS:
            raise ConfigError(f"--backend must be one of {DIST_BACKENDS}, not {self.backend!r}")
        if self.stages is not None and self.stages < 1:
            raise ConfigError(f"--stages must be >= 1, got {self.stages}")
        if self.chunks is not None and self.chunks < 1:
            raise ConfigError(f"--chunks must be >= 1, got {self.chunks}")
        if self.stages is not None and self.chunks is not None and self.chunks < self.stages:
            raise ConfigError(f"--chunks {self.chunks} < --stages {self.stages}: every stage needs a chunk in flight; "
                              f"use --chunks >= {self.stages}")
        if self.stages is not None and self.layers is not None and self.parallel == "layer" \
                and self.stages > self.layers:
            raise ConfigError(f"--stages {self.stages} > --layers {self.layers}: each pipeline stage owns at least one "
                              f"layer; use --stages <= {self.layers} or more layers")
        if self.pipe_warmup < 0:
            raise ConfigError(f"--pipe-warmup must be >= 0, got {self.pipe_warmup}")
        if not 0.0 <= self.pipe_smoothing < 1.0:
            raise ConfigError(f"--pipe-smoothing must be in [0, 1) (PipeGCN uses 0.95), got {self.pipe_smoothing}")
        if not self.dist_timeout > 0:
            raise ConfigError(f"--dist-timeout must be > 0 seconds, got {self.dist_timeout}")
        if self.threads_per_rank is not None and self.threads_per_rank < 1:
            raise ConfigError(f"--threads-per-rank must be >= 1, got {self.threads_per_rank}")
        if self.sampler != "full":
            raise ConfigError("--trainer pipe trains on the full graph (chunks are its micro-batches); "
                              "leave --sampler at 'full'")

    def resolved(self, dataset_name: str, task: str) -> TrainConfig:
        """A copy with every ``None`` filled from the dataset's defaults."""
        d = dict(GENERIC_DEFAULTS[task])
        d.update(DATASET_DEFAULTS.get(dataset_name.lower(), {}))
        if self.trainer == "forward":
            d.update(FORWARD_DEFAULTS)
        kw = {k: v for k, v in d.items() if getattr(self, k) is None}
        return replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Load a JSON config (keys = field names); ``overrides`` win."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError as e:
            raise ConfigError(f"config file {path} does not exist") from e
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {path} is not valid JSON: {e}") from e
        known = {f.name for f in fields(cls)}
        bad = sorted(set(data) - known)
        if bad:
            raise ConfigError(f"config file {path}: unknown keys {bad}; known keys: {sorted(known)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


GENERIC_DEFAULTS: dict[str, dict[str, Any]] = {
    "node": dict(layer="gcn", layers=2, hidden=64, epochs=200, lr=0.01, weight_decay=5e-4, dropout=0.5,
                 patience=100, saint_graph="full"),
    "link": dict(layer="sage", layers=2, hidden=256, epochs=200, lr=0.005, weight_decay=0.0, dropout=0.5,
                 batch_size=65536, link_head="mlp", patience=50),
    "graph": dict(layer="gin", layers=5, hidden=64, epochs=100, lr=0.01, weight_decay=0.0, dropout=0.5,
                  batch_size=32, norm="batch", readout="sum", patience=1000, lr_decay_step=50),
}

# ForwardGNN's paper protocol: hidden 128, Adam lr 1e-3, weight decay 5e-4.
FORWARD_DEFAULTS: dict[str, Any] = dict(hidden=128, lr=1e-3, weight_decay=5e-4)

DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "synthetic-sbm": dict(epochs=100),
    "cora": dict(hidden=16, epochs=200),
    "citeseer": dict(hidden=16, epochs=200),
    "ogbl-ddi": dict(layer="sage", hidden=256, layers=2, epochs=200, lr=0.005, batch_size=65536, grad_clip=1.0),
    "mutag": dict(epochs=100, hidden=32),
}
