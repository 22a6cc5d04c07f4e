"""``LocalBatch``: the rows of a chunk (or partition) of the full graph, with its halo.

A chunk computed at a layer needs the states of its nodes' in-neighbours. Its local batch
holds the chunk's nodes first (local ids ``0 .. num_targets-1``) and then the halo (remote
in-neighbours); its edges are the full graph's edges *into the chunk*, and its propagation
operators are the rows of the full graph's operators for the chunk's nodes (columns mapped to
local ids; halo rows empty). The rows a layer computes for the chunk's nodes are then exactly
the full-graph rows, whatever the normalization (GCN's symmetric norm uses the full graph's
degrees on both sides), for every layer that builds a node's output from its in-edges and
its own state: the layers that declare ``propagation`` and PyG-style message passing (GAT,
GIN, SAGE with ``edge_index``). The halo rows of a layer's output are partial and dropped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from gnnsys.batch import MiniBatch


def slice_rows(op: torch.Tensor, nodes: torch.Tensor, num_targets: int) -> torch.Tensor:
    """Rows ``nodes[:num_targets]`` of the ``N x N`` operator ``op``, columns restricted to
    ``nodes`` and renumbered to their positions: a square ``len(nodes)`` CSR matrix whose
    rows past ``num_targets`` are empty. Every column of those rows must be in ``nodes``."""
    if not op.is_sparse_csr:
        op = op.to_sparse_csr()
    dev = op.device
    crow, col, val = op.crow_indices(), op.col_indices(), op.values()
    targets = nodes[:num_targets].to(dev)
    starts, ends = crow[targets], crow[targets + 1]
    counts = ends - starts
    total = int(counts.sum())
    # positions starts[r] .. ends[r]-1 of every target row, in row order, without a loop
    offs = torch.cumsum(counts, 0) - counts
    pos = torch.arange(total, device=dev) - torch.repeat_interleave(offs - starts, counts)
    g2l = torch.full((op.size(1),), -1, dtype=torch.long, device=dev)
    g2l[nodes.to(dev)] = torch.arange(nodes.numel(), device=dev)
    cols = g2l[col[pos]]
    if total and int(cols.min()) < 0:
        raise ValueError("slice_rows: an operator column lies outside the local node set")
    n = nodes.numel()
    crow_l = torch.zeros(n + 1, dtype=torch.long, device=dev)
    crow_l[1:num_targets + 1] = torch.cumsum(counts, 0)
    crow_l[num_targets + 1:] = total
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow_l, cols, val[pos], size=(n, n), check_invariants=False)


@dataclass
class LocalBatch(MiniBatch):
    """A ``MiniBatch`` of one chunk's nodes (``node_ids[:num_targets]``) and their halo.

    ``adj(norm)`` slices the full batch's cached operator (``slice_rows``), so the chunk rows
    are the full graph's. ``target`` holds the local indices of the chunk's training nodes
    (for the loss); ``x`` is unset (the trainers pass states explicitly)."""

    num_targets: int = 0
    source: MiniBatch | None = field(default=None, repr=False, compare=False)

    def adj(self, norm: str = "sum") -> torch.Tensor:
        if norm not in self._adj:
            if self.source is None:
                return super().adj(norm)
            self._adj[norm] = slice_rows(self.source.adj(norm), self.node_ids, self.num_targets)
        return self._adj[norm]

    @property
    def num_halo(self) -> int:
        """Number of halo (remote in-neighbour) nodes."""
        return self.num_nodes - self.num_targets


def local_batch(full: MiniBatch, targets: torch.Tensor, train_mask: torch.Tensor | None = None) -> LocalBatch:
    """The ``LocalBatch`` of ``targets`` (sorted global ids) in ``full`` (the whole graph)."""
    dev = full.edge_index.device
    targets = targets.to(dev)
    n = full.num_nodes
    inside = torch.zeros(n, dtype=torch.bool, device=dev)
    inside[targets] = True
    src, dst = full.edge_index[0], full.edge_index[1]
    into = inside[dst]
    e_src, e_dst = src[into], dst[into]
    halo = torch.unique(e_src[~inside[e_src]])
    nodes = torch.cat([targets, halo])
    g2l = torch.full((n,), -1, dtype=torch.long, device=dev)
    g2l[nodes] = torch.arange(nodes.numel(), device=dev)
    ew = None if full.edge_weight is None else full.edge_weight[into]
    ea = None if full.edge_attr is None else full.edge_attr[into]
    tgt = None
    if train_mask is not None:
        tgt = train_mask.to(dev)[targets].nonzero().view(-1)
    return LocalBatch(node_ids=nodes, edge_index=torch.stack([g2l[e_src], g2l[e_dst]]), edge_weight=ew,
                      edge_attr=ea, y=None if full.y is None else full.y[nodes], target=tgt,
                      num_targets=targets.numel(), source=full)
