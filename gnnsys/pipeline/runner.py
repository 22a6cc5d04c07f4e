"""Entry point of ``--trainer pipe``: pick the launch mode and the scheme, run, return the record."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.paths import torch_bytes
from gnnsys.pipeline.common import check_dataset
from gnnsys.pipeline.launch import DistContext, env_world_size, init_from_env, shutdown, single_context, spawn

if TYPE_CHECKING:
    from gnnsys.checkpoint import TrainerCheckpoint


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


def run_rank(ctx: DistContext, dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor],
             checkpoint: TrainerCheckpoint | None = None) -> dict[str, Any]:
    """Run this rank's share of the configured scheme (``checkpoint``: the run's checkpoints,
    see ``gnnsys.pipeline.ckpt``). With ``cfg.save_model`` rank 0's record holds the whole
    model's state dict under ``model_state``."""
    if cfg.parallel == "graph":
        from gnnsys.pipeline.graph_parallel import GraphParallelTrainer

        return GraphParallelTrainer(ctx, dataset, cfg, split, checkpoint).fit()
    if cfg.pipe_train == "sf":
        from gnnsys.pipeline.sf_pipe import SFPipeTrainer

        return SFPipeTrainer(ctx, dataset, cfg, split, checkpoint).fit()
    from gnnsys.pipeline.layer_pipe import LayerPipeTrainer

    return LayerPipeTrainer(ctx, dataset, cfg, split, checkpoint).fit()


def _spawned_rank(dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor],
                  checkpoint: TrainerCheckpoint | None) -> dict[str, Any]:
    ctx = init_from_env(cfg)
    try:
        result = run_rank(ctx, dataset, cfg, split, checkpoint)
        if "model_state" in result:  # plain bytes through the result queue (tensors would need this process alive)
            result["model_state"] = torch_bytes(result["model_state"])
        return result
    finally:
        shutdown()


def _decoded(result: dict[str, Any]) -> dict[str, Any]:
    if isinstance(result.get("model_state"), bytes):
        result["model_state"] = torch.load(io.BytesIO(result["model_state"]), weights_only=True)
    return result


def run_pipe(dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor],
             checkpoint: TrainerCheckpoint | None = None) -> dict[str, Any]:
    """Train with GNNPipe (or the graph-parallel baseline) and return the run record.

    Under torchrun (``WORLD_SIZE`` set) this process runs its own rank; otherwise one stage runs
    here and more are spawned as local processes. ``checkpoint``: the run's view of its
    checkpoints (``gnnsys.checkpoint``), handed to every rank."""
    check_dataset(dataset)
    cfg = resolve_counts(cfg)
    if env_world_size() is not None:
        ctx = init_from_env(cfg)
        result = run_rank(ctx, dataset, cfg, split, checkpoint)
        shutdown()  # only after success: tearing down a group with a dead peer can block
        return result
    if cfg.stages == 1:
        from gnnsys.pipeline.launch import check_backend

        check_backend(cfg, 1)
        return run_rank(single_context(cfg), dataset, cfg, split, checkpoint)
    from gnnsys.pipeline.launch import check_backend

    check_backend(cfg, cfg.stages)
    return _decoded(spawn(_spawned_rank, (dataset, cfg, split, checkpoint), cfg.stages, cfg))
