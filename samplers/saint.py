"""GraphSAINT entry point: ``make_saint_loader(dataset, config)`` builds the sampler a
``TrainConfig`` names, with its normalization computed (or loaded from a file)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from gnnsys.samplers.saint_base import SaintLoader, SaintSampler
from gnnsys.samplers.saint_norm import SaintMiniBatch, SaintStatistics, saint_propagation_matrix
from gnnsys.samplers.saint_samplers import (
    SaintEdgeSampler,
    SaintMultiDimRandomWalkSampler,
    SaintNodeSampler,
    SaintRandomWalkSampler,
)

from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.errors import ConfigError

SAINT_SAMPLERS: dict[str, type[SaintSampler]] = {
    "saint-node": SaintNodeSampler,
    "saint-edge": SaintEdgeSampler,
    "saint-rw": SaintRandomWalkSampler,
    "saint-mrw": SaintMultiDimRandomWalkSampler,
}

# The paper's sizes for large graphs (Flickr / Reddit configs), capped for small graphs.
PAPER_NODE_BUDGET, PAPER_EDGE_BUDGET, PAPER_ROOTS = 8000, 6000, 3000
PAPER_MRW_BUDGET, PAPER_FRONTIER = 8000, 1000


def default_budgets(sampler: str, num_nodes: int, num_train: int, walk_length: int = 2) -> dict[str, int]:
    """Budgets when the config leaves them ``None``: the paper's sizes, or for a small
    sampling graph (``num_nodes`` nodes, ``num_train`` training nodes) subgraphs of about a
    third of it. The node sampler gets 3/5 of the nodes in draws: its nodes are independent
    draws, so an induced subgraph keeps only about (share of nodes)² of the edges, and at a
    third of the nodes sparse CiteSeer lost 2.7 points to full batch (2000 draws: +0.2)."""
    if sampler == "saint-node":
        return {"budget": max(1, min(PAPER_NODE_BUDGET, (3 * num_nodes) // 5))}
    if sampler == "saint-edge":
        return {"budget": max(1, min(PAPER_EDGE_BUDGET, num_nodes // 6))}
    if sampler == "saint-rw":
        return {"num_roots": max(1, min(PAPER_ROOTS, num_train // 2, num_nodes // (3 * (walk_length + 1)) or 1))}
    if sampler == "saint-mrw":
        return {"budget": max(1, min(PAPER_MRW_BUDGET, num_nodes // 4)),
                "frontier_size": max(1, min(PAPER_FRONTIER, num_train // 4))}
    raise ConfigError(f"unknown GraphSAINT sampler {sampler!r}; choose one of {sorted(SAINT_SAMPLERS)}")


def build_saint_sampler(dataset: Dataset, config: TrainConfig, device: Any = "cpu") -> SaintSampler:
    """The sampler ``config.sampler`` names, on ``dataset``, without normalization."""
    name = config.sampler
    if name not in SAINT_SAMPLERS:
        raise ConfigError(f"{name!r} is not a GraphSAINT sampler; choose one of {sorted(SAINT_SAMPLERS)}")
    if dataset.task == "graph":
        raise ConfigError("GraphSAINT samples subgraphs of one large graph; it does not apply to graph "
                          f"classification ({dataset.name}); use --sampler full")
    mode = config.saint_graph or "full"
    if mode not in ("train", "full"):
        raise ConfigError(f"--saint-graph must be 'train' or 'full', not {mode!r}")
    g = dataset.graph
    kw: dict[str, Any] = dict(seed=config.seed, graph_mode=mode, device=device,
                              unseen_edges=config.saint_unseen_edges)
    if dataset.task == "node":
        train = dataset.split["train"]
    else:  # link: every node can be sampled; positives are the training pairs inside a subgraph
        train = None
        kw["link_pairs"] = dataset.split["train"]
    n_train = g.num_nodes if train is None else int(torch.unique(train).numel())
    n_s = n_train if mode == "train" else g.num_nodes
    walk_length = config.saint_walk_length if config.saint_walk_length is not None else 2
    d = default_budgets(name, n_s, n_train, walk_length)
    if name == "saint-rw":
        roots = config.saint_roots if config.saint_roots is not None else d["num_roots"]
        return SaintRandomWalkSampler(g, roots, walk_length, train, **kw)
    if name == "saint-mrw":
        budget = config.saint_budget if config.saint_budget is not None else d["budget"]
        frontier = config.saint_frontier
        if frontier is None:
            frontier = d["frontier_size"]
        return SaintMultiDimRandomWalkSampler(g, budget, frontier, train, **kw)
    budget = config.saint_budget if config.saint_budget is not None else d["budget"]
    return SAINT_SAMPLERS[name](g, budget, train, **kw)


def make_saint_loader(dataset: Dataset, config: TrainConfig, device: Any = "cpu",
                      statistics: dict[str, Any] | None = None) -> SaintSampler:
    """Build the sampler named by ``config.sampler`` (``saint-node|saint-edge|saint-rw|saint-mrw``)
    and its normalization: ``statistics`` when given (``SaintStatistics.state()``, as a
    checkpoint keeps them), else loaded from ``config.saint_norm_cache`` when that file exists
    and matches, else pre-sampled with ``config.saint_coverage`` (and saved there when given).

    Iterating the result yields an epoch of ``SaintMiniBatch`` es (subgraphs: node ids, edges,
    weights; ``gnnsys.loading.LoadingPipeline`` adds features and operators); with
    ``config.num_workers > 0`` iterate ``sampler.dataloader(config.num_workers)`` instead."""
    if statistics is not None:
        sampler = build_saint_sampler(dataset, config, device)
        sampler.set_statistics(SaintStatistics.from_state(statistics, sampler.signature(), sampler.device))
        return sampler
    cache = Path(config.saint_norm_cache).expanduser() if config.saint_norm_cache else None
    if cache is not None and not cache.exists():  # fail before pre-sampling, not after it
        import os

        base = cache.parent if str(cache.parent) else Path(".")
        while not base.exists() and base != base.parent:  # missing folders are created when saving
            base = base.parent
        if cache.is_dir() or not base.is_dir() or not os.access(base, os.W_OK):
            why = "it is a folder" if cache.is_dir() else (f"{base} is not a folder" if not base.is_dir()
                                                             else f"{base} is not writable")
            raise ConfigError(f"--saint-norm-cache {cache}: cannot save the statistics there ({why}); "
                              "name a file in a writable folder")
    sampler = build_saint_sampler(dataset, config, device)
    if cache is not None and cache.exists():
        try:
            return sampler.load_normalization(cache)
        except ConfigError as e:
            warnings.warn(f"{e}; recomputing the statistics", stacklevel=2)
    sampler.compute_normalization(config.saint_coverage)
    if cache is not None:
        sampler.save_normalization(cache)
    return sampler


__all__ = [
    "SAINT_SAMPLERS", "SaintSampler", "SaintLoader", "SaintNodeSampler", "SaintEdgeSampler",
    "SaintRandomWalkSampler", "SaintMultiDimRandomWalkSampler", "SaintMiniBatch", "SaintStatistics",
    "saint_propagation_matrix", "default_budgets", "build_saint_sampler", "make_saint_loader",
]
