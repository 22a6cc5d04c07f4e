"""``MiniBatch``: the one mini-batch type every sampler produces and every trainer eats."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import torch

from gnnsys.sparse import csr_operator, propagation_matrix

if TYPE_CHECKING:  # pragma: no cover
    from gnnsys.dataset import Dataset


@dataclass
class MiniBatch:
    """A (sub)graph with its features and targets, in local ids.

    - ``node_ids``: global ids of the batch's nodes (local id ``i`` is ``node_ids[i]``)
    - ``edge_index``: local COO ``[2, e]``; messages flow ``edge_index[0] -> edge_index[1]``
    - ``edge_weight``: optional per-edge weight (GraphSAINT's aggregator normalization)
    - ``edge_ids``: optional global edge id of each local edge
    - ``x``: gathered features (``None`` for featureless graphs: the model embeds ``node_ids``)
    - ``y``: labels of the batch's nodes (node task) or graphs (graph task)
    - ``target``: local node (or graph) indices whose loss counts; ``None`` means all
    - ``loss_weight``: optional weight per ``target`` entry (GraphSAINT's loss normalization)
    - ``pos_edges`` / ``neg_edges``: local ``[2, k]`` pairs for link tasks
    - ``graph_index``: graph of each node (PyG's ``batch`` vector) for graph tasks
    - ``csr_ptr``: optional row pointer (``num_nodes + 1``) when ``edge_index`` is in CSR order
      of the targets (sorted by ``(dst, src)``, as the GraphSAINT inducer emits it): the
      propagation operators are then built without a sort
    - ``all_nodes``: the batch is the whole graph (``node_ids`` = ``arange(num_nodes)``): the
      fetch stage reads the whole feature matrix
    - ``symmetric``: the edges are symmetric (an undirected graph), so an unweighted ``sum`` or
      ``gcn`` operator is its own transpose in the backward pass
    """

    node_ids: torch.Tensor
    edge_index: torch.Tensor
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None
    edge_weight: torch.Tensor | None = None
    edge_ids: torch.Tensor | None = None
    edge_attr: torch.Tensor | None = None
    target: torch.Tensor | None = None
    loss_weight: torch.Tensor | None = None
    pos_edges: torch.Tensor | None = None
    neg_edges: torch.Tensor | None = None
    graph_index: torch.Tensor | None = None
    num_graphs: int = 0
    csr_ptr: torch.Tensor | None = None
    symmetric: bool = False
    all_nodes: bool = False
    _adj: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_nodes(self) -> int:
        return self.node_ids.numel()

    @property
    def num_edges(self) -> int:
        return self.edge_index.size(1)

    @property
    def device(self) -> torch.device:
        return self.edge_index.device

    def adj(self, norm: str = "sum") -> torch.Tensor:
        """Propagation matrix of this batch (``gnnsys.sparse.propagation_matrix``), cached."""
        if norm not in self._adj:
            if self.csr_ptr is not None:
                self._adj[norm] = csr_operator(self.csr_ptr, self.edge_index[0], self.num_nodes, self.edge_weight,
                                               norm, symmetric=self.symmetric)
            else:
                self._adj[norm] = propagation_matrix(self.edge_index, self.num_nodes, self.edge_weight, norm,
                                                     allow_dense=True)
        return self._adj[norm]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MiniBatch:
        """Copy of the batch with every tensor on ``device``."""
        kw: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "_adj":
                continue
            v = getattr(self, f.name)
            kw[f.name] = v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
        out = type(self)(**kw)  # subclasses (e.g. GraphSAINT's batch) keep their type and fields
        out._adj = {k: _operator_to(a, device) for k, a in self._adj.items()}
        return out

    def to_pyg(self) -> Any:
        """A ``torch_geometric.data.Data`` (``batch`` attribute set for graph tasks)."""
        from torch_geometric.data import Data

        d = Data(x=self.x, edge_index=self.edge_index, y=self.y, num_nodes=self.num_nodes)
        d.node_ids = self.node_ids
        if self.edge_weight is not None:
            d.edge_weight = self.edge_weight
        if self.edge_attr is not None:
            d.edge_attr = self.edge_attr
        if self.graph_index is not None:
            d.batch = self.graph_index
        return d

    def to_dgl(self) -> Any:
        """A ``dgl.DGLGraph`` with ``ndata['x']``, ``ndata['_ID']`` and ``edata['w']`` where set."""
        try:
            import dgl
        except ImportError as e:  # pragma: no cover
            raise ImportError("MiniBatch.to_dgl needs DGL: pip install 'gnnsys[dgl]'") from e
        g = dgl.graph((self.edge_index[0], self.edge_index[1]), num_nodes=self.num_nodes)
        g.ndata["_ID"] = self.node_ids
        if self.x is not None:
            g.ndata["x"] = self.x
        if self.edge_weight is not None:
            g.edata["w"] = self.edge_weight
        return g

    @classmethod
    def full(cls, dataset: Dataset, device: torch.device | str | None = None) -> MiniBatch:
        """The whole graph of ``dataset`` as one batch with its features (full-batch training
        and evaluation): ``gnnsys.loading.full_batch``, the loading pipeline's stages on the
        whole graph."""
        from gnnsys.loading import full_batch

        return full_batch(dataset, device)

def _operator_to(op: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``op`` on ``device``, with the transpose it carries (a symmetric operator stays its own)."""
    out = op.to(device)
    if out is op:
        return op
    t = getattr(op, "_gnnsys_transpose", None)
    if t is not None:
        out._gnnsys_transpose = out if t is op else t.to(device)
    mean_t = getattr(op, "_gnnsys_mean_transpose", None)
    if mean_t is not None:
        out._gnnsys_mean_transpose = tuple(a.to(device) for a in mean_t)
    return out
