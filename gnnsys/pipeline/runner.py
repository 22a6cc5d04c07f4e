"""Entry point of ``--trainer pipe``: pick the launch mode and the scheme, run, return the record."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.pipeline.common import check_dataset
from gnnsys.pipeline.launch import DistContext, env_world_size, init_from_env, shutdown, single_context, spawn


def resolve_counts(cfg: TrainConfig) -> TrainConfig:
    """``stages`` (from ``WORLD_SIZE`` under torchrun, else 1) and ``chunks`` (1 for one stage,
    else twice the stages) filled in, then validated again."""
    stages = cfg.stages if cfg.stages is not None else (env_world_size() or 1)
    chunks = cfg.chunks if cfg.chunks is not None else (1 if stages == 1 else 2 * stages)
    if cfg.parallel == "graph":
        chunks = stages  # the baseline's "chunks" are its partitions
    out = replace(cfg, stages=stages, chunks=chunks)
    out.validate()
    return out


def run_rank(ctx: DistContext, dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Run this rank's share of the configured scheme."""
    if cfg.parallel == "graph":
        from gnnsys.pipeline.graph_parallel import GraphParallelTrainer

        return GraphParallelTrainer(ctx, dataset, cfg, split).fit()
    if cfg.pipe_train == "sf":
        from gnnsys.pipeline.sf_pipe import SFPipeTrainer

        return SFPipeTrainer(ctx, dataset, cfg, split).fit()
    from gnnsys.pipeline.layer_pipe import LayerPipeTrainer

    return LayerPipeTrainer(ctx, dataset, cfg, split).fit()


def _spawned_rank(dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor]) -> dict[str, Any]:
    ctx = init_from_env(cfg)
    try:
        return run_rank(ctx, dataset, cfg, split)
    finally:
        shutdown()


def run_pipe(dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Train with GNNPipe (or the graph-parallel baseline) and return the run record.

    Under torchrun (``WORLD_SIZE`` set) this process runs its own rank; otherwise one stage runs
    here and more are spawned as local processes."""
    check_dataset(dataset)
    cfg = resolve_counts(cfg)
    if env_world_size() is not None:
        ctx = init_from_env(cfg)
        result = run_rank(ctx, dataset, cfg, split)
        shutdown()  # only after success: tearing down a group with a dead peer can block
        return result
    if cfg.stages == 1:
        from gnnsys.pipeline.launch import check_backend

        check_backend(cfg, 1)
        return run_rank(single_context(cfg), dataset, cfg, split)
    from gnnsys.pipeline.launch import check_backend

    check_backend(cfg, cfg.stages)
    return spawn(_spawned_rank, (dataset, cfg, split), cfg.stages, cfg)
