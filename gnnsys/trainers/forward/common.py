"""Shared parts of the ForwardGNN trainers: settings, input checks, per-layer modules,
virtual nodes, early stopping and the layer-local losses.

Every ForwardGNN layer is its own ``nn.Module`` with its own optimizer. A layer only ever
receives *detached* node states (``torch.no_grad`` outputs or ``.detach()`` copies of other
layers' states), so no gradient can cross a layer boundary.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gnnsys.batch import MiniBatch
from gnnsys.config import (
    LINK_FORWARD_VARIANTS,
    NODE_FORWARD_VARIANTS,
    VN_EDGE_DIRECTIONS,
    TrainConfig,
    default_vn_edges,
)
from gnnsys.dataset import Dataset
from gnnsys.errors import ConfigError, DataFormatError
from gnnsys.models.registry import construct_layer, get_layer
from gnnsys.models.stack import GNNStack, accepts_sparse_input, input_dropout

#: The paper's optimizer settings, used when a config leaves ``lr`` / ``weight_decay`` unset.
PAPER_LR = 1e-3
PAPER_WEIGHT_DECAY = 5e-4
TOPDOWN_VARIANTS = ("sf-top2input", "sf-top2loss", "top-down")


@dataclass
class ForwardSettings:
    """The resolved hyperparameters of one ForwardGNN run.

    ``epochs`` is the cap *per layer* for the greedy variants and the number of training time
    steps for the top-down ones; ``patience`` counts epochs (time steps) without a better
    validation score. ``logit`` is how SF scores a node against a class virtual node:
    ``"dot"`` (``h · h_vn / tau``, the default: on Cora's public split it scored 80.0 against
    76.8 for cosine with the best of tau 0.05/0.1/0.5) or ``"cosine"`` (``cos(h, h_vn) / tau``).
    """

    variant: str
    layer: str
    layers: int
    hidden: int
    epochs: int
    lr: float
    weight_decay: float
    dropout: float
    patience: int | None
    eval_every: int
    tau: float
    theta: float
    timesteps: int
    logit: str = "cosine"
    vn_edges: str = "both"
    num_neg: int = 1
    batch_size: int | None = None
    layer_kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: TrainConfig, task: str) -> ForwardSettings:
        """Settings from a config (``None`` fields get the paper's values: Adam lr 1e-3,
        weight decay 5e-4, hidden 128, 1000 epochs per layer, patience 100)."""
        variant = cfg.forward_variant or ("sf" if task == "node" else "forward-ce")
        check_variant(variant, task)
        logit = cfg.extra.get("forward_logit", "dot")
        if logit not in ("cosine", "dot"):
            raise ConfigError(f"forward_logit must be 'cosine' or 'dot', not {logit!r}")
        tau = cfg.forward_tau if cfg.forward_tau is not None else (0.1 if logit == "cosine" else 1.0)
        if not tau > 0:
            raise ConfigError(f"--forward-tau must be > 0, got {tau}")
        vn_edges = cfg.forward_vn_edges or default_vn_edges(variant)
        if variant == "ff-vn" and vn_edges == "to-vn":
            raise ConfigError("--forward-vn-edges to-vn does not fit ff-vn: its positive and negative graphs differ "
                              "only in which class node a member reads, so a member must read it; use 'both'")
        if cfg.forward_timesteps < 1:
            raise ConfigError(f"--forward-timesteps must be >= 1, got {cfg.forward_timesteps}")
        return cls(
            variant=variant,
            layer=cfg.layer or ("gcn" if task == "node" else "sage"),
            layers=cfg.layers or 2,
            hidden=cfg.hidden or 128,
            epochs=cfg.epochs or 1000,
            lr=cfg.lr if cfg.lr is not None else PAPER_LR,
            weight_decay=cfg.weight_decay if cfg.weight_decay is not None else PAPER_WEIGHT_DECAY,
            dropout=cfg.dropout if cfg.dropout is not None else 0.0,
            patience=cfg.patience if cfg.patience is not None else 100,
            eval_every=max(1, cfg.eval_every),
            tau=float(tau),
            theta=float(cfg.forward_theta),
            timesteps=int(cfg.forward_timesteps),
            logit=logit,
            vn_edges=vn_edges,
            num_neg=max(1, cfg.num_neg),
            batch_size=cfg.batch_size,
            layer_kwargs=cfg.layer_kwargs(),
        )


def check_variant(variant: str, task: str) -> None:
    """``ConfigError`` unless ``variant`` is a ForwardGNN variant for ``task``."""
    if task == "node":
        ok, other = NODE_FORWARD_VARIANTS, LINK_FORWARD_VARIANTS
    elif task == "link":
        ok, other = LINK_FORWARD_VARIANTS, NODE_FORWARD_VARIANTS
    else:
        raise ConfigError(f"the forward trainer serves node classification and link prediction, not {task!r} tasks; "
                          "use --trainer backprop for graph classification")
    if variant not in ok:
        hint = f" ({variant!r} is a {'link' if task == 'node' else 'node'}-task variant)" if variant in other else ""
        raise ConfigError(f"--forward-variant {variant!r} does not fit a {task} task{hint}; "
                          f"choose one of {', '.join(ok)}")


def check_node_labels(dataset: Dataset, split: dict[str, torch.Tensor]) -> torch.Tensor:
    """Labels fit for ForwardGNN's class virtual nodes / label appending, else ``DataFormatError``.

    Every class needs a training node: a class with none has nothing to pull its virtual
    node (or its appended label) towards. Returns the int64 label vector."""
    if dataset.labels is None:
        raise DataFormatError(f"{dataset.name}: node classification needs labels")
    y = dataset.labels.long().view(-1)
    k = dataset.num_classes
    present = torch.unique(y)
    if present.numel() < 2 or k < 2:
        raise DataFormatError(
            f"{dataset.name}: every node has the same label ({int(present[0]) if present.numel() else '-'}); "
            "classification needs at least 2 classes")
    if int(y.min()) < 0 or int(y.max()) >= k:
        raise DataFormatError(f"{dataset.name}: labels {int(y.min())}..{int(y.max())} outside [0, {k})")
    train = split["train"]
    seen = torch.bincount(y[train], minlength=k)
    missing = (seen == 0).nonzero().view(-1).tolist()
    if missing:
        raise DataFormatError(
            f"{dataset.name}: classes {missing} have no node in the training split; ForwardGNN needs a training "
            "node of every class (its class virtual node / appended label learns from them). "
            "Use a split that covers every class (e.g. --split random) or drop those classes.")
    return y


# ----------------------------------------------------------------------------------- modules
class ForwardLayer(nn.Module):
    """One ForwardGNN layer: a registry layer followed by ReLU.

    ``forward(x, batch)`` takes the (already normalized, detached) input states of the
    batch's nodes and the batch whose graph it propagates over (``GNNStack.apply_layer``: the
    cached sparse operator for layers that declare ``propagation``, else ``edge_index``).
    ``embedding`` (featureless graphs) is a learned input table owned by layer 0."""

    def __init__(self, conv: nn.Module, dropout: float = 0.0, embedding: nn.Embedding | None = None) -> None:
        super().__init__()
        self.conv = conv
        self.dropout = dropout
        self.embedding = embedding

    def forward(self, x: torch.Tensor, batch: MiniBatch) -> torch.Tensor:
        x = input_dropout(x, self.dropout, self.training, accepts_sparse_input(self.conv))
        return F.relu(GNNStack.apply_layer(self.conv, x, batch))


def make_layer(s: ForwardSettings, in_dim: int, out_dim: int) -> ForwardLayer:
    """A ``ForwardLayer`` around ``s.layer`` from the layer registry (``Cls(in_dim, out_dim)``)."""
    conv = construct_layer(get_layer(s.layer), in_dim, out_dim, s.layer_kwargs, name=s.layer)
    return ForwardLayer(conv, s.dropout)


def make_optimizer(module: nn.Module, s: ForwardSettings) -> torch.optim.Optimizer:
    """The layer's own Adam."""
    return torch.optim.Adam(module.parameters(), lr=s.lr, weight_decay=s.weight_decay)


def resume_layer(cur: dict[str, Any], layer: nn.Module, opt: torch.optim.Optimizer, stop: EarlyStopping,
                 checkpoint: Any) -> tuple[int, bool]:
    """Put the layer being trained back where a checkpoint's ``current`` entry left it (its
    weights, optimizer and early-stopping state, then the random streams); returns the epoch to
    continue from and whether the layer had finished."""
    layer.load_state_dict(cur["layer"])
    opt.load_state_dict(cur["optimizer"])
    stop.load_state_dict(cur["stop"])
    checkpoint.restore_rng()
    return int(cur["epoch"]) + 1, bool(cur["done"])


def l2norm(h: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalization (zero rows stay zero)."""
    return F.normalize(h, p=2.0, dim=-1)


class EarlyStopping:
    """Keeps the best-validation weights of a module; ``step`` says when patience ran out."""

    def __init__(self, module: nn.Module, patience: int | None, higher_better: bool = True) -> None:
        self.module, self.patience = module, patience
        self.sign = 1.0 if higher_better else -1.0
        self.best, self.best_epoch, self.state = -math.inf, -1, None
        self.since = 0

    def step(self, epoch: int, score: float, every: int = 1) -> bool:
        """Record a validation score; returns ``True`` when training should stop."""
        s = self.sign * score if not math.isnan(score) else -math.inf
        if s > self.best or self.state is None:
            self.best, self.best_epoch, self.since = s, epoch, 0
            self.state = copy.deepcopy(self.module.state_dict())
        else:
            self.since += every
        return self.patience is not None and self.since >= self.patience

    def restore(self) -> None:
        """Put the best weights back into the module."""
        if self.state is not None:
            self.module.load_state_dict(self.state)

    def state_dict(self) -> dict[str, Any]:
        """Best score, its epoch, checks since, best weights (checkpoints)."""
        return {"best": self.best, "best_epoch": self.best_epoch, "since": self.since, "state": self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what ``state_dict`` recorded."""
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.since, self.state = int(state["since"]), state["state"]

    @property
    def best_score(self) -> float:
        return self.sign * self.best


# ------------------------------------------------------------------------------ batches
def class_means(x: torch.Tensor, idx: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """L2-normalized mean of ``x[idx]`` per class ``y`` (``[K, d]``): a class virtual node's input."""
    s = x.new_zeros(num_classes, x.size(1)).index_add_(0, y, x[idx])
    return l2norm(s)


def with_virtual_nodes(batch: MiniBatch, x: torch.Tensor, members: torch.Tensor, classes: torch.Tensor,
                       num_classes: int, vn_x: torch.Tensor | None = None, direction: str = "both") -> MiniBatch:
    """``batch`` plus ``num_classes`` virtual nodes (local ids ``n .. n+K-1``), each linked to
    ``members`` whose class is ``classes``; ``x`` gets ``K`` more rows, ``vn_x`` (default
    zeros; the trainers pass the class means of the labeled nodes' features, so that a
    virtual node carries its class from the first layer on).

    ``direction``: ``"both"`` (member -> virtual node and back, the paper's default) or
    ``"to-vn"`` (member -> virtual node only, the paper code's ``unidirection``: the virtual
    node gathers its members, a member never reads it). Virtual-node edges weigh 1 when the
    batch carries GraphSAINT edge weights."""
    if direction not in VN_EDGE_DIRECTIONS:
        raise ConfigError(f"virtual-node edge direction must be one of {VN_EDGE_DIRECTIONS}, not {direction!r}")
    n = batch.num_nodes
    dev = batch.edge_index.device
    vn = n + classes.to(dev)
    members = members.to(dev)
    if direction == "both":
        extra = torch.stack([torch.cat([members, vn]), torch.cat([vn, members])])
    else:
        extra = torch.stack([members, vn])
    ei = torch.cat([batch.edge_index, extra], 1)
    ew = None
    if batch.edge_weight is not None:
        ew = torch.cat([batch.edge_weight, torch.ones(extra.size(1), dtype=batch.edge_weight.dtype, device=dev)])
    xv = torch.cat([x, x.new_zeros(num_classes, x.size(1)) if vn_x is None else vn_x.to(x.dtype)])
    ids = torch.cat([batch.node_ids, torch.full((num_classes,), -1, dtype=batch.node_ids.dtype, device=dev)])
    kw: dict[str, Any] = dict(node_ids=ids, edge_index=ei, x=xv, edge_weight=ew, target=batch.target,
                              loss_weight=batch.loss_weight)
    if batch.csr_ptr is not None and torch.unique(members).numel() == members.numel():
        # keep the CSR order of the targets: the operators need no sort
        kw["edge_index"], kw["edge_weight"], kw["csr_ptr"] = _csr_with_virtual_nodes(
            batch, members, classes.to(dev), num_classes, direction)
    deg = getattr(batch, "norm_degree", None)
    if deg is not None:  # GraphSAINT batch normalized by sampling-graph degrees: count the new links
        if direction == "both":  # members now also read their class node
            deg = deg + torch.bincount(members, minlength=n).to(deg.dtype)
        vdeg = torch.bincount(classes.to(dev), minlength=num_classes).to(deg.dtype)
        kw["norm_degree"] = torch.cat([deg, vdeg])
        return type(batch)(**kw)
    return MiniBatch(**kw)


def _csr_with_virtual_nodes(batch: MiniBatch, members: torch.Tensor, classes: torch.Tensor, num_classes: int,
                            direction: str) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The edges of ``with_virtual_nodes`` in CSR order of the targets (sorted by (dst, src)),
    from a batch already in that order, without a sort of its edges: a member's link from its
    class node (``"both"``) has the largest source id, so it ends the member's row; the rows of
    the class nodes (their members, ascending) come after every other row."""
    n, dev = batch.num_nodes, batch.edge_index.device
    ei, ew, crow = batch.edge_index, batch.edge_weight, batch.csr_ptr.to(dev)
    order = torch.argsort(classes * n + members)  # class nodes' rows: members ascending
    vn_rows = torch.stack([members[order], n + classes[order]])
    vn_crow = torch.cumsum(torch.bincount(classes, minlength=num_classes), 0)
    ones = None if ew is None else torch.ones(members.numel(), dtype=ew.dtype, device=dev)
    if direction == "both":
        added = torch.zeros(n, dtype=torch.long, device=dev)
        added[members] = 1
        before = torch.cumsum(added, 0) - added  # links inserted in earlier rows
        rows = torch.repeat_interleave(torch.arange(n, device=dev), crow.diff(), output_size=ei.size(1))
        m = ei.size(1) + members.numel()
        pos = torch.arange(ei.size(1), device=dev) + before[rows]
        head = crow[1:] + before + added  # row ends after the insertions
        new_ei = torch.empty(2, m, dtype=ei.dtype, device=dev)
        new_ei[:, pos] = ei
        new_ei[:, head[members] - 1] = torch.stack([n + classes, members])
        new_w = None
        if ew is not None:
            new_w = torch.empty(m, dtype=ew.dtype, device=dev)
            new_w[pos] = ew
            new_w[head[members] - 1] = 1.0
        ei, ew = new_ei, new_w
        crow = torch.cat([crow[:1], head])
    ei = torch.cat([ei, vn_rows], 1)
    ew = None if ew is None else torch.cat([ew, ones])
    return ei, ew, torch.cat([crow, crow[-1] + vn_crow])


def node_input(dataset: Dataset, batch: MiniBatch) -> torch.Tensor:
    """Input features of a batch (``batch.x``, else gathered from the dataset)."""
    if batch.x is not None:
        return batch.x.float()
    if dataset.features is None:
        raise DataFormatError(f"{dataset.name}: node classification with ForwardGNN needs node features")
    return dataset.features.gather(batch.node_ids.cpu()).to(batch.device).float()


def targets(batch: MiniBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Local training nodes of a batch and their loss weights (``None``: plain mean)."""
    tgt = batch.target if batch.target is not None else torch.arange(batch.num_nodes, device=batch.device)
    return tgt, batch.loss_weight


def weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean, or GraphSAINT's weighted sum when ``weight`` is given."""
    return values.mean() if weight is None else (weight.to(values.dtype) * values).sum()


# ------------------------------------------------------------------------------- losses
def goodness(h: torch.Tensor) -> torch.Tensor:
    """Forward-Forward goodness ``Σ_k h_k²`` per row."""
    return h.pow(2).sum(-1)


def ff_loss(pos_logit: torch.Tensor, neg_logits: list[torch.Tensor], w: torch.Tensor | None) -> torch.Tensor:
    """BCE pushing ``pos_logit`` (goodness − θ) up and every negative down (negatives averaged)."""
    pos = weighted_mean(F.softplus(-pos_logit), w)
    neg = torch.stack([weighted_mean(F.softplus(n), w) for n in neg_logits]).mean()
    return pos + neg


def class_logits(h: torch.Tensor, h_vn: torch.Tensor, s: ForwardSettings) -> torch.Tensor:
    """SF scores of nodes against class virtual nodes: ``h · h_vnᵀ / τ`` (or cosine / τ)."""
    if s.logit == "cosine":
        h, h_vn = l2norm(h), l2norm(h_vn)
    return h @ h_vn.t() / s.tau
