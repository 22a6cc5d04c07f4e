"""The Python API behind ``gnnsys train``: load, build, initialize, train, report."""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.datasets import load_dataset
from gnnsys.errors import ConfigError
from gnnsys.models import build_model
from gnnsys.models.stack import GNNStack

if TYPE_CHECKING:  # pragma: no cover
    from gnnsys.checkpoint import TrainerCheckpoint


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
        link_head=cfg.link_head or "mlp", readout=cfg.readout or "sum", layer_kwargs=cfg.layer_kwargs(),
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


def make_loader(dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor],
                statistics: dict[str, Any] | None = None):
    """The training mini-batch source named by ``cfg.sampler`` (``None``: the trainer's default);
    ``statistics``: GraphSAINT normalization statistics to use instead of pre-sampling (a
    checkpoint's)."""
    if cfg.sampler == "full":
        return None
    if dataset.task == "graph":
        raise ConfigError("GraphSAINT samplers serve node and link tasks, not graph classification")
    from gnnsys.samplers.saint import make_saint_loader

    if dataset.task == "node" and split is not dataset.split:
        dataset = _with_split(dataset, split)
    sampler = make_saint_loader(dataset, cfg, device=cfg.device, statistics=statistics)
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
                           batches_held=(cfg.prefetch if cfg.prefetch is not None else 1) + 3,
                           model_widths=[cfg.hidden or 0] * max(cfg.layers - 1, 0) + [dataset.num_classes or 0])
    store.expect_epochs(cfg.epochs)  # the packed layout writes no file ahead for an epoch after the last
    own = dataset.features
    if own is not None and (own.dim != store.dim or own.dtype != store.dtype):
        store.close()
        raise ConfigError(f"--feature-file {cfg.feature_file} holds {store.dim}-d {store.dtype} rows but "
                          f"{dataset.name}'s features are {own.dim}-d {own.dtype}; write the file from this "
                          "dataset's features (gnnsys.storage.write_feature_file)")
    return replace(dataset, features=store)
# --- end out-of-core features


def _run_once(dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor],
              checkpoint: TrainerCheckpoint | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One training run on ``split``: its record and, with ``cfg.save_model``, the trained
    model (``gnnsys.saved_model.capture``)."""
    from gnnsys.checkpoint import find_saint_statistics

    seed_everything(cfg.seed)
    stats = find_saint_statistics(checkpoint.state) if checkpoint is not None else None
    if cfg.trainer == "forward":
        from gnnsys.trainers.forward import ForwardTrainer

        dataset = _with_split(dataset, split) if split is not dataset.split else dataset
        trainer = ForwardTrainer(cfg)
        out = trainer.run(with_feature_store(dataset, cfg, split), checkpoint=checkpoint, statistics=stats)
        return out, _capture(cfg, trainer.impl, dataset, split)
    if cfg.trainer == "pipe":
        from gnnsys.pipeline import run_pipe

        out = run_pipe(_with_split(dataset, split) if split is not dataset.split else dataset, cfg, split, checkpoint)
        state = out.pop("model_state", None)
        return out, ({"kind": "stack", "weights": state} if state is not None else None)
    from gnnsys.trainers.backprop import BackpropTrainer

    model = model_for(dataset, cfg)
    initialize(model, dataset, cfg)
    loader = make_loader(dataset, cfg, split, stats)
    dataset = with_feature_store(dataset, cfg, split, loader)
    try:
        hist = BackpropTrainer(cfg).fit(model, dataset, loader=loader, split=split, checkpoint=checkpoint)
    except BaseException:
        if cfg.features == "disk":  # stop the I/O threads and a packing pass running ahead
            dataset.features.close()
        raise
    out = hist.to_dict()
    if cfg.features != "memory" and dataset.features is not None:
        out["feature_store"] = dataset.features.stats()
        if cfg.features == "disk":
            dataset.features.close()
    return out, _capture(cfg, model, dataset, split)


def _capture(cfg: TrainConfig, model: Any, dataset: Dataset, split: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """The trained model's entry for a saved-model file (``None`` unless the run saves one or
    checkpoints: a CV checkpoint keeps the finished folds' models for a later --save-model)."""
    if not (cfg.save_model or cfg.checkpoint_dir):
        return None
    from gnnsys.saved_model import capture

    return capture(model)


def run_splits(dataset: Dataset, cfg: TrainConfig) -> list[dict[str, torch.Tensor]]:
    """The split of each training a run does: one (a node split from ``cfg``, or the
    dataset's), or for TU graph datasets (no split of their own) one per stratified CV fold,
    each fold holding out a tenth of its training graphs for model selection."""
    if dataset.task == "graph" and "train" not in dataset.split:
        from gnnsys.datasets.splits import stratified_kfold

        splits = []
        for fold, (tr, te) in enumerate(stratified_kfold(dataset.labels, cfg.folds, cfg.seed)):
            g = torch.Generator().manual_seed(cfg.seed * 1000 + fold)
            perm = tr[torch.randperm(tr.numel(), generator=g)]
            nval = max(1, tr.numel() // 10)
            splits.append({"train": perm[nval:], "valid": perm[:nval], "test": te})
        return splits
    return [node_split(dataset, cfg) if dataset.task == "node" else dataset.split]


def train(config: TrainConfig | None = None, data: Dataset | None = None, **overrides: Any) -> dict[str, Any]:
    """Train as ``gnnsys train`` does and return the results dict (also written to ``config.out``).

    ``train(dataset="cora", layer="gcn")`` works too: keyword overrides update the config.
    ``data`` trains on an already-built ``Dataset`` instead of loading ``config.dataset``.
    TU graph datasets (no split of their own) run stratified k-fold cross-validation, each
    fold holding out a tenth of its training graphs for model selection.

    Before any data is loaded, every path the run will write (``out``, ``save_model``,
    ``checkpoint_dir``, a new ``saint_norm_cache``) is checked (``gnnsys.paths``). With
    ``checkpoint_dir`` the run writes checkpoints and, with ``resume``, continues from them
    (``gnnsys.checkpoint``); ``save_model`` writes the trained model (``gnnsys.saved_model``).
    """
    from gnnsys import checkpoint as ckpt_mod
    from gnnsys.paths import check_run_outputs

    cfg = TrainConfig(**overrides) if config is None else config
    if config is not None and overrides:
        from dataclasses import replace

        cfg = replace(config, **overrides)
    cfg.validate()
    check_run_outputs(cfg)
    if cfg.features == "disk":  # before loading and sampling start threads: see storage/allocator.py
        from gnnsys.storage.allocator import limit_arenas

        limit_arenas()
    t0 = time.perf_counter()
    dataset = data if data is not None else load_dataset(cfg.dataset, root=cfg.data_root)
    cfg = cfg.resolved(dataset.name, dataset.task)
    cfg.validate()
    if cfg.trainer == "pipe":  # --stages/--chunks as the run will use them (checkpoint fingerprint, saved model)
        from gnnsys.pipeline.runner import resolve_counts

        cfg = resolve_counts(cfg)
    from gnnsys.saved_model import check_saveable

    check_saveable(cfg, dataset)
    ckpt = ckpt_mod.for_run(cfg, dataset.signature())
    runs: list[dict[str, Any]] = []
    models: list[dict[str, Any] | None] = []
    splits = run_splits(dataset, cfg)
    cv = dataset.task == "graph" and "train" not in dataset.split
    for fold, split in enumerate(splits):
        done = ckpt.completed_fold(fold) if ckpt is not None else None
        if done is not None:  # finished before the checkpoint the run resumed from
            res, model = dict(done["record"]), done["model"]
        else:
            res, model = _run_once(dataset, cfg, split, ckpt.trainer(fold) if ckpt is not None else None)
            if cv:
                res["fold"] = fold
            if ckpt is not None:
                ckpt.fold_done(fold, res, model)
        runs.append(res)
        models.append(model)
        if cv and not cfg.quiet:
            print(f"fold {fold + 1}/{cfg.folds}: val {res['val']:.4f} test {res['test']:.4f}", flush=True)
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
    primary = int(os.environ.get("RANK", "0") or 0) == 0  # under torchrun only rank 0 writes
    if cfg.save_model and primary:
        from gnnsys.saved_model import save_model

        result["saved_model"] = str(save_model(cfg.save_model, models, cfg, dataset, result))
    if cfg.out and primary:
        from gnnsys.paths import atomic_write_bytes

        atomic_write_bytes(cfg.out, json.dumps(result, indent=2, default=float).encode(), "--out")
    return result


def summary_line(result: dict[str, Any]) -> str:
    """The final line ``gnnsys train`` prints."""
    std = f" ± {result['test_std']:.4f}" if result.get("folds") else ""
    return (f"{result['dataset']} ({result['task']}, {result['trainer']}, {result['layer']} x{result['layers']}): "
            f"{result['metric']} val {result['val']:.4f} test {result['test']:.4f}{std} "
            f"[{result['epochs']} epochs, {result['seconds']:.1f}s]")


# ------------------------------------------------------------------ saved models (--save-model)
def load_model(path: str | os.PathLike) -> Any:
    """A model file written by ``train(save_model=PATH)`` (``gnnsys.saved_model.SavedModel``)."""
    from gnnsys.saved_model import SavedModel

    return SavedModel.load(path)


def _model_dataset(model: Any, dataset: str | None, data: Dataset | None, data_root: str | None) -> Dataset:
    if data is not None:
        return data
    return load_dataset(dataset or model.signature["name"], root=data_root or model.config.data_root)


def evaluate(model: str | os.PathLike, dataset: str | None = None, data: Dataset | None = None,
             out: str | os.PathLike | None = None, data_root: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Validation and test scores of a saved model on ``dataset`` (a name; default: the one it
    was trained on) or ``data`` (a ``Dataset``), on the split training used: the ``val`` /
    ``test`` that ``train`` reported, recomputed. ``out``: also write them as JSON."""
    from gnnsys.paths import atomic_write_bytes, check_output_file

    if out is not None:
        check_output_file(out, "--out")
    saved = load_model(model)
    ds = _model_dataset(saved, dataset, data, data_root)
    result = saved.evaluate(ds, device=device)
    if out is not None:
        atomic_write_bytes(out, json.dumps(result, indent=2, default=float).encode(), "--out")
    return result


def predict(model: str | os.PathLike, dataset: str | None = None, data: Dataset | None = None,
            out: str | os.PathLike | None = None, pairs: str | os.PathLike | torch.Tensor | None = None,
            fold: int | None = None, data_root: str | None = None, device: str = "cpu") -> dict[str, np.ndarray]:
    """Predictions of a saved model on ``dataset`` / ``data`` (``gnnsys.predict``: node classes
    and probabilities, link scores for ``pairs`` (a ``[2, P]`` tensor or a .csv/.npy file),
    graph predictions); ``out`` (.csv or .npy): also write them there."""
    from gnnsys.predict import check_prediction_path, read_pairs, write_predictions

    if out is not None:
        check_prediction_path(out)
    saved = load_model(model)
    ds = _model_dataset(saved, dataset, data, data_root)
    if pairs is not None and not isinstance(pairs, torch.Tensor):
        pairs = read_pairs(pairs, ds.num_nodes)
    cols = saved.predict(ds, pairs=pairs, fold=fold, device=device)
    if out is not None:
        write_predictions(out, cols)
    return cols
