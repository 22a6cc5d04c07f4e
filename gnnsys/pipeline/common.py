"""Pieces both schemes share: setup on every rank, widths, model selection, the run record."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gnnsys.batch import MiniBatch
from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.errors import ConfigError
from gnnsys.metrics import accuracy
from gnnsys.models.stack import GNNStack
from gnnsys.pipeline.comm import Comm
from gnnsys.pipeline.local import LocalBatch
from gnnsys.pipeline.partition import metis_assignment


def check_dataset(dataset: Dataset) -> None:
    """GNNPipe serves full-graph node classification; anything else is a ``ConfigError``."""
    if dataset.task != "node":
        raise ConfigError(f"--trainer pipe trains node classification on one full graph; {dataset.name} is a "
                          f"{dataset.task}-level task. Use --trainer backprop (or forward) for "
                          f"{dataset.task} tasks")
    if dataset.labels is None:
        raise ConfigError(f"{dataset.name} has no node labels to train on")


def shared_assignment(comm: Comm, graph: Any, k: int) -> torch.Tensor:
    """METIS part ids computed on rank 0 and broadcast (counted under ``setup``), so every
    rank holds the same partition whatever METIS does on its machine."""
    n = graph.num_nodes
    parts = metis_assignment(graph, k) if comm.rank == 0 else torch.empty(n, dtype=torch.long)
    with comm.in_phase("setup"):
        comm.broadcast(parts, 0, "the METIS partition")
    return parts


def layer_widths(model: GNNStack, full: MiniBatch) -> list[int]:
    """Output width of every layer (a dry run on two nodes without edges; works for any
    registry layer, whose widths the stack does not record)."""
    dev = full.edge_index.device
    ids = torch.arange(min(2, full.num_nodes), device=dev)
    b = LocalBatch(node_ids=ids, edge_index=torch.empty(2, 0, dtype=torch.long, device=dev),
                   x=None if full.x is None else full.x[ids], num_targets=ids.numel())
    was = model.training
    model.eval()
    widths = []
    with torch.no_grad():
        h = model.encode(b)
        widths.append(h.size(1))
        for i in range(model.num_layers):
            h = model.forward_layer(i, h, b)
            widths.append(h.size(1))
    model.train(was)
    return widths  # widths[0]: encoder output; widths[l+1]: output of layer l


def train_mask(n: int, split: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    m = torch.zeros(n, dtype=torch.bool, device=device)
    m[split["train"].to(device)] = True
    return m


def eval_scores(logits: torch.Tensor, labels: torch.Tensor, split: dict[str, torch.Tensor]) -> dict[str, float]:
    """Accuracy on valid/test and the validation loss (as ``BackpropTrainer.evaluate``)."""
    out = logits.cpu()
    res = {k: accuracy(out[split[k]], labels[split[k]]) for k in ("valid", "test") if k in split}
    if "valid" in split:
        res["valid_loss"] = float(F.cross_entropy(out[split["valid"]], labels[split["valid"]]))
    return res


def stage_ranges(num_layers: int, stages: int) -> list[range]:
    """Consecutive runs of layers, one per stage, sizes differing by at most one (the later
    stages take the extra layers: the first layer reads the widest input)."""
    if stages > num_layers:
        raise ConfigError(f"--stages {stages} > --layers {num_layers}: each pipeline stage owns at least one layer")
    base, extra = divmod(num_layers, stages)
    sizes = [base + (1 if s >= stages - extra else 0) for s in range(stages)]
    out, start = [], 0
    for sz in sizes:
        out.append(range(start, start + sz))
        start += sz
    return out


def owned_parts(model: GNNStack, layers: range, first: bool, last: bool) -> dict[str, list[nn.Parameter]]:
    """This rank's parameters grouped as ``clip_parts`` groups them (encoder, layers, norms, head)."""
    return {
        "encoder": list(model.encoder.parameters()) if first else [],
        "layers": [p for i in layers for p in model.layers[i].parameters()],
        "norms": [p for i in layers for p in model.norms[i].parameters()],
        "head": list(model.head.parameters()) if last else [],
    }


def clip_global(comm: Comm, parts: dict[str, list[nn.Parameter]], max_norm: float) -> None:
    """``BackpropTrainer``'s ``clip_parts`` over parameters spread across ranks: each part's
    norm is the norm over every rank's share (one all-reduce of 4 floats)."""
    names = ("encoder", "layers", "norms", "head")
    dev = next((p.device for ps in parts.values() for p in ps), torch.device("cpu"))
    sq = torch.zeros(len(names), dtype=torch.float64, device=dev)
    for j, k in enumerate(names):
        gs = [p.grad for p in parts[k] if p.grad is not None]
        if gs:
            sq[j] = torch.stack([g.detach().double().pow(2).sum() for g in gs]).sum()
    with comm.in_phase("control"):
        comm.all_reduce(sq, "gradient norms")
    for j, k in enumerate(names):
        total = float(sq[j].sqrt())
        coef = max_norm / (total + 1e-6)
        if coef < 1.0:
            for p in parts[k]:
                if p.grad is not None:
                    p.grad.detach().mul_(coef)


@dataclass
class Selector:
    """Best-validation model selection with patience, as ``BackpropTrainer.fit`` does."""

    cfg: TrainConfig
    best_score: tuple[float, float] = (-math.inf, -math.inf)
    best_state: dict | None = None
    best_epoch: int = -1
    best_val: float = float("nan")
    test_at_best: float = float("nan")
    since: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def update(self, module: nn.Module, rec: dict[str, Any], evaluated: bool) -> bool:
        """Record an epoch; returns True when patience ran out."""
        c = self.cfg
        if evaluated:
            val = rec.get("valid", float("nan"))
            score = (val if not math.isnan(val) else -math.inf, -rec.get("valid_loss", 0.0))
            if c.select_by == "loss" and "valid_loss" in rec:
                score = score[::-1]
            if score > self.best_score or self.best_state is None:
                self.best_score, self.since = score, 0
                self.best_state = copy.deepcopy(module.state_dict())
                self.best_epoch, self.best_val = rec["epoch"], val
                self.test_at_best = rec.get("test", float("nan"))
            else:
                self.since += c.eval_every
        self.history.append(rec)
        return c.patience is not None and self.since >= c.patience

    def restore(self, module: nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)


def bubble(compute: list[list[float]], wall: list[list[float]]) -> list[float]:
    """Per-epoch bubble fraction from every rank's busy and wall seconds (``[rank][epoch]``):
    ``1 - Σ_r busy_r / (P · max_r wall_r)``, the share of the ranks' time spent idle."""
    out = []
    for e in range(len(wall[0]) if wall else 0):
        span = max(w[e] for w in wall)
        busy = sum(c[e] for c in compute)
        out.append(max(0.0, 1.0 - busy / (len(wall) * span)) if span > 0 else 0.0)
    return out


def gpipe_bubble(stages: int, chunks: int) -> float:
    """GPipe's ideal bubble fraction ``(P-1) / (K+P-1)`` (equal stage times, free transfers)."""
    return (stages - 1) / (chunks + stages - 1)
