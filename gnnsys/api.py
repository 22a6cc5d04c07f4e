"""The Python API behind ``gnnsys train``: load, build, initialize, train, report."""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.datasets import load_dataset
from gnnsys.errors import ConfigError
from gnnsys.models import build_model
from gnnsys.models.stack import GNNStack


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def model_for(dataset: Dataset, cfg: TrainConfig) -> GNNStack:
    """A ``GNNStack`` sized for ``dataset`` from a resolved config."""
    if dataset.features is None:
        encoder = "embedding"
    elif dataset.feature_kind == "ogb-atom":
        encoder = "atom"
    else:
        encoder = "features"
    return build_model(
        cfg.layer, dataset.num_features, cfg.hidden, dataset.num_classes, cfg.layers, dropout=cfg.dropout,
        task=dataset.task, encoder=encoder, num_nodes=dataset.num_nodes, norm=cfg.norm,
        link_head=cfg.link_head or "mlp", readout=cfg.readout or "sum", layer_kwargs=cfg.extra.get("layer_kwargs"),
        residual=cfg.residual,
    )


def initialize(model: GNNStack, dataset: Dataset, cfg: TrainConfig) -> None:
    """Apply ``cfg.init`` (``default`` keeps each layer's own initialization)."""
    if cfg.init == "default":
        return
    from gnnsys.models.init import init_model_

    # GraphSAINT on the training graph trains on the induced training subgraph: take Virgo's
    # statistic there too.
    nodes = dataset.split["train"] if cfg.sampler != "full" and cfg.saint_graph == "train" else None
    init_model_(model, cfg.init, graph=dataset.graph, features=dataset.features,
                num_classes=dataset.num_classes, dataset=dataset, seed=cfg.seed, nodes=nodes)


def node_split(dataset: Dataset, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """The dataset's own split, or a random 64/16/20 split drawn from ``cfg.seed``."""
    if cfg.split == "public":
        return dataset.split
    from gnnsys.datasets.splits import random_node_split

    return random_node_split(dataset.num_nodes, cfg.seed)


def make_loader(dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor]):
    """The training mini-batch source named by ``cfg.sampler`` (``None``: the trainer's default)."""
    if cfg.sampler == "full":
        return None
    if dataset.task == "graph":
        raise ConfigError("GraphSAINT samplers serve node and link tasks, not graph classification")
    from gnnsys.samplers.saint import make_saint_loader

    if dataset.task == "node" and split is not dataset.split:
        dataset = _with_split(dataset, split)
    sampler = make_saint_loader(dataset, cfg, device=cfg.device)
    # Worker processes go through a DataLoader that still advances the stream every epoch.
    return sampler.dataloader(cfg.num_workers) if cfg.num_workers > 0 else sampler


def _with_split(dataset: Dataset, split: dict[str, torch.Tensor]) -> Dataset:
    from dataclasses import replace

    return replace(dataset, split=split)


def with_feature_store(dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor] | None = None,
                       sampler: Any = None) -> Dataset:
    """``dataset`` reading its features through the store ``cfg.features`` names: the loader's
    own (``"memory"``) or a ``TieredFeatureStore`` whose cache tier holds ``cfg.cache_fraction``
    of the rows on ``cfg.cache_device``, placed by ``cfg.cache_policy`` from the graph, the
    training nodes and, with a GraphSAINT ``sampler``, its pre-sampling counts ``C_v``."""
    if cfg.features == "disk":
        return _with_disk_features(dataset, cfg, split, sampler)
    if cfg.features == "memory" or dataset.features is None:
        return dataset
    from dataclasses import replace

    from gnnsys.config import DEFAULT_CACHE_POLICY
    from gnnsys.storage import build_feature_store

    sampler = getattr(sampler, "sampler", sampler)  # a SaintLoader's sampler
    stats = getattr(sampler, "stats", None)
    train_nodes = (split or dataset.split).get("train") if dataset.task == "node" else None
    window = cfg.cache_window
    if window is None and sampler is not None and hasattr(sampler, "__len__"):
        from gnnsys.storage.policies import DEFAULT_WINDOW

        window = max(1, min(DEFAULT_WINDOW, len(sampler)))  # an epoch ahead (the pipeline looks ahead per epoch)
    options = {} if window is None else {"window": window}
    cache_device = cfg.cache_device or (cfg.device if cfg.device.startswith("cuda") else "cpu")
    store = build_feature_store(
        dataset.features, kind=cfg.features, cache_fraction=cfg.cache_fraction,
        cache_policy=cfg.cache_policy or DEFAULT_CACHE_POLICY, cache_device=cache_device, graph=dataset.graph,
        train_nodes=train_nodes, saint_counts=None if stats is None else stats.node_count.cpu(), **options)
    return replace(dataset, features=store)


# --- out-of-core features (--features disk)
def _with_disk_features(dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor] | None,
                        sampler: Any) -> Dataset:
    """``dataset`` reading its features from ``cfg.feature_file`` through an ``OutOfCoreStore``
    (cache tier + read buffers within ``cfg.memory_budget``; the cache placed by a static policy:
    GraphSAINT's ``C_v`` by default). The file must have one row per node; its dtype and width
    must match the dataset's own features where it has them."""
    from dataclasses import replace

    from gnnsys.storage.out_of_core import OutOfCoreStore

    sampler = getattr(sampler, "sampler", sampler)
    stats = getattr(sampler, "stats", None)
    counts = None if stats is None else stats.node_count.cpu()
    policy = cfg.cache_policy or ("static-saint" if counts is not None else "static-degree")
    store = OutOfCoreStore(cfg.feature_file, cfg.memory_budget, graph=dataset.graph, layout=cfg.disk_layout,
                           policy=policy, sampler=sampler, counts=counts, cache_dir=cfg.cache_dir,
                           train_nodes=(split or dataset.split).get("train") if dataset.task == "node" else None,
                           batches_held=(cfg.prefetch if cfg.prefetch is not None else 1) + 3)
    own = dataset.features
    if own is not None and (own.dim != store.dim or own.dtype != store.dtype):
        store.close()
        raise ConfigError(f"--feature-file {cfg.feature_file} holds {store.dim}-d {store.dtype} rows but "
                          f"{dataset.name}'s features are {own.dim}-d {own.dtype}; write the file from this "
                          "dataset's features (gnnsys.storage.write_feature_file)")
    return replace(dataset, features=store)
# --- end out-of-core features


def _run_once(dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor]) -> dict[str, Any]:
    seed_everything(cfg.seed)
    if cfg.trainer == "forward":
        from gnnsys.trainers.forward import ForwardTrainer

        dataset = _with_split(dataset, split) if split is not dataset.split else dataset
        return ForwardTrainer(cfg).run(with_feature_store(dataset, cfg, split))
    if cfg.trainer == "pipe":
        from gnnsys.pipeline import run_pipe

        return run_pipe(_with_split(dataset, split) if split is not dataset.split else dataset, cfg, split)
    from gnnsys.trainers.backprop import BackpropTrainer

    model = model_for(dataset, cfg)
    initialize(model, dataset, cfg)
    loader = make_loader(dataset, cfg, split)
    dataset = with_feature_store(dataset, cfg, split, loader)
    hist = BackpropTrainer(cfg).fit(model, dataset, loader=loader, split=split)
    out = hist.to_dict()
    if cfg.features != "memory" and dataset.features is not None:
        out["feature_store"] = dataset.features.stats()
        if cfg.features == "disk":
            dataset.features.close()
    return out


def train(config: TrainConfig | None = None, data: Dataset | None = None, **overrides: Any) -> dict[str, Any]:
    """Train as ``gnnsys train`` does and return the results dict (also written to ``config.out``).

    ``train(dataset="cora", layer="gcn")`` works too: keyword overrides update the config.
    ``data`` trains on an already-built ``Dataset`` instead of loading ``config.dataset``.
    TU graph datasets (no split of their own) run stratified k-fold cross-validation, each
    fold holding out a tenth of its training graphs for model selection.
    """
    cfg = TrainConfig(**overrides) if config is None else config
    if config is not None and overrides:
        from dataclasses import replace

        cfg = replace(config, **overrides)
    cfg.validate()
    t0 = time.perf_counter()
    dataset = data if data is not None else load_dataset(cfg.dataset, root=cfg.data_root)
    cfg = cfg.resolved(dataset.name, dataset.task)
    cfg.validate()
    runs: list[dict[str, Any]] = []
    if dataset.task == "graph" and "train" not in dataset.split:
        from gnnsys.datasets.splits import stratified_kfold

        for fold, (tr, te) in enumerate(stratified_kfold(dataset.labels, cfg.folds, cfg.seed)):
            g = torch.Generator().manual_seed(cfg.seed * 1000 + fold)
            perm = tr[torch.randperm(tr.numel(), generator=g)]
            nval = max(1, tr.numel() // 10)
            split = {"train": perm[nval:], "valid": perm[:nval], "test": te}
            res = _run_once(dataset, cfg, split)
            res["fold"] = fold
            runs.append(res)
            if not cfg.quiet:
                print(f"fold {fold + 1}/{cfg.folds}: val {res['val']:.4f} test {res['test']:.4f}", flush=True)
    else:
        split = node_split(dataset, cfg) if dataset.task == "node" else dataset.split
        runs.append(_run_once(dataset, cfg, split))
    tests = [r["test"] for r in runs]
    vals = [r["val"] for r in runs]
    result: dict[str, Any] = {
        "dataset": dataset.name,
        "task": dataset.task,
        "metric": dataset.metric,
        "val": statistics.fmean(vals),
        "test": statistics.fmean(tests),
        "test_std": statistics.pstdev(tests) if len(tests) > 1 else 0.0,
        "epochs": sum(r["epochs"] for r in runs),
        "seconds": time.perf_counter() - t0,
        "trainer": cfg.trainer,
        "layer": cfg.layer,
        "layers": cfg.layers,
        "hidden": cfg.hidden,
        "init": cfg.init,
        "sampler": cfg.sampler,
        "seed": cfg.seed,
        "split": cfg.split if dataset.task == "node" else ("cv" if len(runs) > 1 else "official"),
        "folds": len(runs) if len(runs) > 1 else None,
        "config": cfg.to_dict(),
        "runs": runs,
    }
    if cfg.out and int(os.environ.get("RANK", "0") or 0) == 0:  # under torchrun only rank 0 writes
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(result, indent=2, default=float))
    return result


def summary_line(result: dict[str, Any]) -> str:
    """The final line ``gnnsys train`` prints."""
    std = f" ± {result['test_std']:.4f}" if result.get("folds") else ""
    return (f"{result['dataset']} ({result['task']}, {result['trainer']}, {result['layer']} x{result['layers']}): "
            f"{result['metric']} val {result['val']:.4f} test {result['test']:.4f}{std} "
            f"[{result['epochs']} epochs, {result['seconds']:.1f}s]")
