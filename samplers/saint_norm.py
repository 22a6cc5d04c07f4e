"""GraphSAINT normalization: counts from pre-sampling, aggregator and loss weights.

After pre-sampling ``N`` subgraphs, ``C_v`` counts the subgraphs containing node ``v`` and
``C_uv`` those containing the directed edge ``u -> v``. As in the original code:

- aggregator weight of the message ``u -> v`` (``v`` aggregates): ``clip(C_v / C_uv, 0, 1e4)``,
  ``0.1`` where both counts are 0 (``0/0``);
- loss weight of training node ``v``: ``N / (C_v * |V_train|)`` with ``C_v = 0`` read as ``0.1``;
  0 for nodes outside the training set.

The original then normalizes the weighted subgraph adjacency by each node's degree in the
*sampling* graph (not the subgraph): ``SaintMiniBatch`` carries that degree
(``norm_degree``) and builds its propagation operators with it, so that for every layer norm
(``sum`` / ``mean`` / ``gcn``) the subgraph operator is an unbiased estimate of the operator of
the sampling graph.

Edges never seen in pre-sampling. An edge with ``C_uv = 0`` but ``C_v > 0`` gets the clip,
``1e4``, in the original: when such an edge turns up in a later subgraph, its message
weighs hundreds to thousands of times a seen one and the training step can blow up. How
often that happens is estimated from the counts alone (Good-Turing): a later subgraph holds
on average about ``n_1 / N`` edges that pre-sampling never saw (an upper bound for those with
``C_v > 0``), ``n_1`` the number of edges counted exactly once
(``SaintStatistics.unseen_edge_rate``). ``unseen="once"`` counts an unseen edge as seen
once (weight ``C_v``, the largest weight a seen edge of ``v`` can have) instead; the
default, ``"clip"``, is the original.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from gnnsys.samplers.saint_kernels import count_into

from gnnsys.batch import MiniBatch
from gnnsys.config import SAINT_UNSEEN_EDGES
from gnnsys.errors import ConfigError
from gnnsys.sparse import NORMS, csr_operator, propagation_matrix

AGGR_CLIP = 1e4
ZERO_COUNT = 0.1
STATS_VERSION = 1
UNSEEN_EDGE_MODES = SAINT_UNSEEN_EDGES


@dataclass
class SaintMiniBatch(MiniBatch):
    """A ``MiniBatch`` whose propagation operators use ``norm_degree`` (the in-degree of each
    local node in the sampling graph) instead of the subgraph's weighted degree, as the
    original GraphSAINT does. Without ``norm_degree`` or ``edge_weight`` it is a plain
    ``MiniBatch``."""

    norm_degree: torch.Tensor | None = None

    def adj(self, norm: str = "sum") -> torch.Tensor:
        if self.norm_degree is None or self.edge_weight is None:
            return super().adj(norm)
        if norm not in self._adj:
            if self.csr_ptr is not None:
                self._adj[norm] = csr_operator(self.csr_ptr, self.edge_index[0], self.num_nodes, self.edge_weight,
                                               norm, degree=self.norm_degree)
            else:
                self._adj[norm] = saint_propagation_matrix(
                    self.edge_index, self.num_nodes, self.edge_weight, self.norm_degree, norm
                )
        return self._adj[norm]


def saint_propagation_matrix(
    edge_index: torch.Tensor, num_nodes: int, edge_weight: torch.Tensor, degree: torch.Tensor, norm: str
) -> torch.Tensor:
    """GraphSAINT's subgraph operator for a layer norm (see ``gnnsys.sparse``), with ``w`` =
    ``edge_weight`` (``C_v / C_uv``) and ``d`` = ``degree`` (sampling-graph in-degree):

    - ``"sum"``: ``p_uv = w_uv``
    - ``"mean"``: ``p_uv = w_uv / d_v``
    - ``"gcn"``: ``p_uv = w_uv / sqrt((d_u + 1)(d_v + 1))`` plus self loops ``1 / (d_v + 1)``
    """
    if norm not in NORMS:
        raise ValueError(f"unknown propagation norm {norm!r}; choose one of {NORMS}")
    src, dst = edge_index[0], edge_index[1]
    w = edge_weight.float()
    d = degree.float().to(w.device)
    if norm == "sum":
        return propagation_matrix(edge_index, num_nodes, w, "sum")
    if norm == "mean":
        return propagation_matrix(edge_index, num_nodes, w / d.clamp_min(1.0)[dst], "sum")
    dh = d + 1.0
    w = w * (dh[src] * dh[dst]).rsqrt()
    loop = torch.arange(num_nodes, device=w.device)
    ei = torch.cat([edge_index, torch.stack([loop, loop])], 1)
    return propagation_matrix(ei, num_nodes, torch.cat([w, 1.0 / dh]), "sum")


class SaintStatistics:
    """Pre-sampling counts ``C_v`` (``node_count``), ``C_uv`` (``edge_count``, per global edge
    id) and ``N`` (``num_subgraphs``), and the weights derived from them."""

    def __init__(self, num_nodes: int, num_edges: int, device: torch.device | str = "cpu") -> None:
        self.node_count = torch.zeros(num_nodes, dtype=torch.int32, device=device)
        self.edge_count = torch.zeros(num_edges, dtype=torch.int32, device=device)
        self.num_subgraphs = 0
        self.train_nodes_sampled = 0
        self.meta: dict[str, Any] = {}

    def add(self, node_ids: torch.Tensor, edge_ids: torch.Tensor) -> None:
        """Count one subgraph (global node ids, global edge ids)."""
        pairs = ((self.node_count, node_ids), (self.edge_count, edge_ids))
        cpu = all(c.device.type == "cpu" and i.device.type == "cpu" for c, i in pairs)
        if cpu:  # the numba count does not check bounds: check both first, count nothing on error
            for count, ids in pairs:
                if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= count.numel()):
                    raise IndexError(f"SaintStatistics.add: ids outside [0, {count.numel()})")
        for count, ids in pairs:
            if cpu:
                count_into(count.numpy(), ids.numpy())  # a third of index_add_'s time on CPU
            else:
                count.index_add_(0, ids, torch.ones_like(ids, dtype=torch.int32))
        self.num_subgraphs += 1

    def edge_norm(self, edge_dst: torch.Tensor, unseen: str = "clip") -> torch.Tensor:
        """``clip(C_v / C_uv, 0, 1e4)`` per global edge (``edge_dst`` = aggregating node
        ``v`` of each edge), ``0.1`` where both counts are 0. ``unseen="once"``: an edge with
        ``C_uv = 0 < C_v`` counts as seen once (weight ``C_v``) instead of getting the clip."""
        if unseen not in UNSEEN_EDGE_MODES:
            raise ConfigError(f"unseen-edge handling must be one of {UNSEEN_EDGE_MODES}, not {unseen!r}")
        cv = self.node_count.float()[edge_dst]  # counts < 2**24: exact in float32
        cuv = self.edge_count.float()
        if unseen == "once":
            cuv = torch.where((cuv == 0) & (cv > 0), torch.ones_like(cuv), cuv)
        val = cv.div_(cuv).clamp_(0.0, AGGR_CLIP)
        return val.masked_fill_(torch.isnan(val), ZERO_COUNT)

    def unseen_edge_rate(self) -> float:
        """Expected number of edges in a later subgraph that pre-sampling never saw (the
        Good-Turing estimate ``n_1 / N``: edges counted exactly once, over subgraphs)."""
        if self.num_subgraphs == 0:
            return 0.0
        return int((self.edge_count == 1).sum()) / self.num_subgraphs

    def loss_norm(self, train_mask: torch.Tensor) -> torch.Tensor:
        """``N / (C_v * |V_train|)`` for training nodes (``C_v = 0`` read as 0.1), 0 elsewhere."""
        c = self.node_count.double()
        c = torch.where(c == 0, torch.full_like(c, ZERO_COUNT), c)
        n_train = max(int(train_mask.sum()), 1)
        val = self.num_subgraphs / c / n_train
        return torch.where(train_mask.to(c.device), val, torch.zeros_like(val)).float()

    # ------------------------------------------------------------------- files
    def state(self) -> dict[str, Any]:
        """The counts and ``meta`` as plain values and CPU tensors (``save``, checkpoints)."""
        return {"version": STATS_VERSION, "node_count": self.node_count.cpu(), "edge_count": self.edge_count.cpu(),
                "num_subgraphs": self.num_subgraphs, "train_nodes_sampled": self.train_nodes_sampled,
                "meta": self.meta}

    def same_counts(self, state: dict[str, Any]) -> bool:
        """Whether ``state`` (from ``state()``) holds exactly these counts."""
        return (int(state["num_subgraphs"]) == self.num_subgraphs
                and torch.equal(state["node_count"], self.node_count.cpu())
                and torch.equal(state["edge_count"], self.edge_count.cpu()))

    @classmethod
    def from_state(cls, d: dict[str, Any], expect_meta: dict[str, Any] | None = None,
                   device: torch.device | str = "cpu", source: str = "a checkpoint") -> SaintStatistics:
        """The statistics ``state()`` described; ``expect_meta`` must match what they were
        sampled with (sampler, budgets, graph size, seed), else ``ConfigError``."""
        if not isinstance(d, dict) or d.get("version") != STATS_VERSION:
            raise ConfigError(f"{source} holds no GraphSAINT statistics of version {STATS_VERSION}")
        if expect_meta is not None:
            diff = {k: (d["meta"].get(k), v) for k, v in expect_meta.items() if d["meta"].get(k) != v}
            if diff:
                raise ConfigError(
                    f"GraphSAINT statistics in {source} were computed for a different setup "
                    f"(saved vs now: {diff}); delete the file or pass another --saint-norm-cache"
                )
        s = cls(0, 0)
        s.node_count = d["node_count"].to(device)
        s.edge_count = d["edge_count"].to(device)
        s.num_subgraphs = int(d["num_subgraphs"])
        s.train_nodes_sampled = int(d["train_nodes_sampled"])
        s.meta = dict(d["meta"])
        return s

    def save(self, path: str | Path) -> None:
        """Write the counts and ``meta`` (what they were sampled with) to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.state(), path)

    @classmethod
    def load(cls, path: str | Path, expect_meta: dict[str, Any] | None = None,
             device: torch.device | str = "cpu") -> SaintStatistics:
        """Read statistics saved by ``save``; ``expect_meta`` must match what was saved
        (sampler, budgets, graph size, seed), else ``ConfigError``."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                d = torch.load(Path(path), map_location="cpu", weights_only=True)
        except FileNotFoundError as e:
            raise ConfigError(f"GraphSAINT statistics file {path} does not exist") from e
        except Exception as e:  # noqa: BLE001 - any unreadable file is a config problem
            raise ConfigError(f"cannot read GraphSAINT statistics from {path}: {e}") from e
        if not isinstance(d, dict) or d.get("version") != STATS_VERSION:
            raise ConfigError(f"{path} is not a GraphSAINT statistics file of version {STATS_VERSION}")
        return cls.from_state(d, expect_meta, device, source=str(path))
