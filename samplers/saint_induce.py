"""Inducing subgraphs fast: the degree-oriented adjacency and the group inducer.

``OrientedAdjacency`` (see ``saint_kernels``) is built once per sampler from the sampling graph. ``induce`` turns a
group of raw draws (node ids, with repeats) into induced subgraphs: unique sorted nodes and
every edge among them, in local ids, with the global edge id of each. On CPU it runs the
numba kernels of ``saint_kernels`` (several subgraphs per call, across cores); on any other
device (CUDA) the same algorithm runs as vectorized torch over the whole group at once (a
handful of kernels and three host syncs per group, whatever its size).

Edges come out in CSR order of their targets (sorted by ``(dst, src)``) with the row pointer,
so the batch's propagation operator is built without a sort (``gnnsys.sparse.csr_operator``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gnnsys.graph import Graph

#: nodes, local edge_index [2, e] in CSR order of the targets (sorted by (dst, src)), global edge
#: ids, row pointer (nodes + 1) of ``edge_index[1]``
Induced = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class OrientedAdjacency:
    """Every edge of a graph stored once, at its lower-degree endpoint (the *owner*).

    - ``optr`` (n+1): row pointer over owners
    - ``partner``: the other endpoint
    - ``fwd`` / ``rev``: global id of the edge owner -> partner / partner -> owner, ``-1``
      where that direction is absent (an undirected graph has both: one entry per pair)
    """

    optr: torch.Tensor
    ent: torch.Tensor  # [entries, 3]: partner, fwd, rev
    num_nodes: int
    symmetric: bool = False  # every edge has its reverse (an undirected graph)
    _all_paired: bool | None = None

    @property
    def partner(self) -> torch.Tensor:
        return self.ent[:, 0]

    @property
    def fwd(self) -> torch.Tensor:
        return self.ent[:, 1]

    @property
    def rev(self) -> torch.Tensor:
        return self.ent[:, 2]

    @classmethod
    def build(cls, graph: Graph, global_eids: torch.Tensor | None = None,
              use_kernel: bool | None = None) -> OrientedAdjacency:
        """Orient ``graph`` (rank = total degree in + out, ties by id). ``global_eids[p]`` is
        the global id of CSR position ``p`` (default: ``p``). ``use_kernel`` (default: on CPU)
        builds with the numba kernel, pairing both directions of undirected edges; the torch
        build keeps one entry per directed edge."""
        n = graph.num_nodes
        dev = graph.device
        deg = graph.degree("out") + graph.degree("in")
        key = deg * max(n, 1) + torch.arange(n, device=dev)  # (degree, id) in one int64
        gids = torch.arange(graph.num_edges, device=dev) if global_eids is None else global_eids
        if use_kernel is None:
            use_kernel = dev.type == "cpu"
        if use_kernel:
            from gnnsys.samplers.saint_kernels import build_oriented

            small = int(gids.max()) < 2**31 - 1 if gids.numel() else True
            small = small and n < 2**31 - 1
            witness = np.zeros(1, dtype=np.int32 if small else np.int64)
            optr, ent, sym = build_oriented(
                graph.indptr.numpy(), graph.indices.numpy(), key.numpy(),
                gids.numpy().astype(witness.dtype), witness,
            )
            return cls(torch.from_numpy(optr), torch.from_numpy(ent), num_nodes=n, symmetric=bool(sym))
        # other devices: one entry per directed edge (no pairing), vectorized
        src, dst = graph.row(), graph.indices
        src_owns = key[src] <= key[dst]
        owner = torch.where(src_owns, src, dst)
        order = torch.argsort(owner, stable=True)
        optr = torch.zeros(n + 1, dtype=torch.long, device=dev)
        torch.cumsum(torch.bincount(owner, minlength=n), 0, out=optr[1:])
        partner = torch.where(src_owns, dst, src)[order]
        g, own = gids[order], src_owns[order]
        none = torch.full_like(g, -1)
        ent = torch.stack([partner, torch.where(own, g, none), torch.where(own, none, g)], 1)
        return cls(optr, ent, n, symmetric=graph.is_symmetric())

    def to(self, device: torch.device | str) -> OrientedAdjacency:
        """Copy on ``device`` (off the CPU the ids are widened to int64)."""
        dev = torch.device(device)
        ent = self.ent if dev.type == "cpu" else self.ent.long()
        return OrientedAdjacency(self.optr.to(dev), ent.to(dev), self.num_nodes, self.symmetric)

    @property
    def device(self) -> torch.device:
        return self.optr.device

    # ------------------------------------------------------------------ inducing
    def induce_torch_group(self, draws: list[torch.Tensor] | torch.Tensor) -> list[Induced]:
        """Many subgraphs at once with torch ops (any device). ``draws``: one id tensor per
        subgraph, or a ``[subgraphs, draws]`` tensor.

        Node ``v`` of subgraph ``s`` is the key ``s * n + v``: one sort dedupes every draw, and
        an oriented entry (owner, partner) of subgraph ``s`` is kept when ``s * n + partner``
        is among the keys (a binary search in the sorted keys, so no per-subgraph marking
        buffer). Keys, entries and edges all come out grouped by subgraph, so each subgraph is
        a slice; the host waits three times per group, whatever its size."""
        dev, n = self.device, self.num_nodes
        if isinstance(draws, torch.Tensor):
            g = draws.size(0)
            raw = (draws.to(dev).long() + n * torch.arange(g, device=dev).unsqueeze(1)).view(-1)
        else:
            g = len(draws)
            sizes = [int(d.numel()) for d in draws]
            sub = torch.repeat_interleave(torch.arange(g, device=dev), torch.tensor(sizes, device=dev),
                                          output_size=sum(sizes))
            raw = sub * n + torch.cat(draws).to(dev).long()
        keys = torch.unique(raw)  # sorted by (subgraph, node)
        bounds = torch.arange(g + 1, device=dev) * n
        nstart = torch.searchsorted(keys, bounds)  # first key of each subgraph (and the end)
        ksub = torch.div(keys, n, rounding_mode="floor")
        base = ksub * n
        nodes = keys - base
        start = self.optr[nodes]
        lens = self.optr[nodes + 1] - start
        csum = torch.cumsum(lens, 0)
        total = int(csum[-1]) if csum.numel() else 0  # host wait 1
        # entry t of key k sits at optr[node_k] + (t - first entry of k)
        per_key = torch.stack([start - (csum - lens), base], 1)
        owner = torch.repeat_interleave(torch.arange(keys.numel(), device=dev), lens, output_size=total)
        at = per_key[owner]
        pos = torch.arange(total, device=dev) + at[:, 0]
        ent = self.ent[pos]  # partner, fwd, rev
        query = at[:, 1] + ent[:, 0].long()
        j = torch.searchsorted(keys, query).clamp_max_(max(keys.numel() - 1, 0))
        keep = keys[j] == query  # host wait 2 (the mask's size)
        kept = torch.stack([owner, j, ent[:, 1].long(), ent[:, 2].long()])[:, keep]
        i, j, f, r = kept
        # each kept entry gives owner -> partner (if fwd) and partner -> owner (if rev), in place
        cols = torch.stack([torch.stack([i, j], 1), torch.stack([j, i], 1), torch.stack([f, r], 1)]).view(3, -1)
        if not self.all_paired:
            cols = cols[:, cols[2] >= 0]
        # CSR order of the targets: key positions are grouped by subgraph, so sorting by
        # (target, source) position keeps each subgraph's edges together
        nk = max(keys.numel(), 1)
        cols = cols[:, torch.argsort(cols[1] * nk + cols[0])]
        local = torch.arange(keys.numel(), device=dev) - nstart[ksub]  # id within its subgraph
        ei = local[cols[:2]]
        indeg = torch.bincount(cols[1], minlength=keys.numel())
        estart = torch.searchsorted(ksub[cols[1]], torch.arange(g + 1, device=dev))
        counts = torch.stack([nstart, estart]).diff(dim=1).tolist()  # host wait 3
        eid = cols[2]
        out = []
        for v, e, x, d in zip(nodes.split(counts[0]), ei.split(counts[1], 1), eid.split(counts[1]),
                              indeg.split(counts[0])):
            crow = torch.zeros(d.numel() + 1, dtype=torch.long, device=dev)
            torch.cumsum(d, 0, out=crow[1:])
            out.append((v, e.contiguous(), x, crow))
        return out

    @property
    def all_paired(self) -> bool:
        """Every entry holds both directions (an undirected graph built with the kernel)."""
        if self._all_paired is None:
            self._all_paired = bool(((self.ent[:, 1] >= 0) & (self.ent[:, 2] >= 0)).all())
        return self._all_paired


class GroupInducer:
    """Induces groups of subgraphs. On CPU ``induce(draws, slot)`` runs the numba kernel with
    the scratch buffers (bitmap, id map) of thread slot ``slot`` (one per concurrent caller)."""

    def __init__(self, adj: OrientedAdjacency, use_kernel: bool | None = None) -> None:
        self.adj = adj
        self.use_kernel = adj.device.type == "cpu" if use_kernel is None else use_kernel
        self._scratch: dict[int, tuple[np.ndarray, ...]] = {}
        self._np: tuple[np.ndarray, ...] | None = None
        self._set_numpy()

    def _set_numpy(self) -> None:
        a = self.adj
        if self.use_kernel:
            self._np = (a.optr.numpy(), a.ent.numpy())

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_scratch"], d["_np"] = {}, None
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        self._set_numpy()

    def induce(self, draws: list[Any] | torch.Tensor, slot: int = 0, csr: bool = True) -> list[Induced]:
        """Induced subgraph of each draw array (node ids of the sampling graph: numpy arrays on
        CPU, tensors on the adjacency's device otherwise, or one ``[subgraphs, draws]`` tensor).
        ``csr=False`` (pre-sampling's counting): the CPU kernel may leave the edges unordered
        and the row pointer ``None``."""
        if len(draws) == 0:
            return []
        if not self.use_kernel:
            if isinstance(draws, torch.Tensor):  # [subgraphs, draws]
                return self.adj.induce_torch_group(draws)
            return self.adj.induce_torch_group([torch.as_tensor(d, device=self.adj.device) for d in draws])
        from gnnsys.samplers.saint_kernels import induce_group

        optr, ent = self._np  # type: ignore[misc]
        arrs = [np.asarray(d) for d in draws]
        sizes = np.fromiter((a.shape[0] for a in arrs), dtype=np.int64, count=len(arrs))
        doff = np.zeros(len(arrs) + 1, dtype=np.int64)
        np.cumsum(sizes, out=doff[1:])
        flat = np.concatenate(arrs).astype(np.int64, copy=False)
        # edge bound: each oriented entry of each draw (repeats included) gives <= 2 edges
        olen = optr[flat + 1] - optr[flat]
        csum = np.zeros(flat.shape[0] + 1, dtype=np.int64)
        np.cumsum(2 * olen, out=csum[1:])
        eoff = csum[doff]
        bits, lmap, src, dst, eid, t_src, t_dst, t_eid = self._buffers(slot, int(eoff[-1]))
        nodes, ncnt, ecnt, crow = induce_group(flat, doff, eoff, bits, lmap, optr, ent, src, dst, eid,
                                               t_src, t_dst, t_eid, csr)
        out = []
        for s in range(len(arrs)):
            lo, c = doff[s], ncnt[s]
            elo, ec = eoff[s], ecnt[s]
            ei = np.empty((2, ec), dtype=np.int64)  # one copy out of the scratch buffers
            ei[0] = src[elo:elo + ec]
            ei[1] = dst[elo:elo + ec]
            out.append((torch.from_numpy(nodes[lo:lo + c]), torch.from_numpy(ei),
                        torch.from_numpy(eid[elo:elo + ec].astype(np.int64)),
                        torch.from_numpy(crow[lo + s:lo + s + c + 1]) if csr else None))
        return out

    def _buffers(self, slot: int, capacity: int) -> tuple[np.ndarray, ...]:
        """Scratch of thread slot ``slot``: node bitmap, id map, edge buffers that hold at
        least ``capacity`` edges and the sort's scratch of the same size (reused across calls:
        no page faults on fresh memory)."""
        sc = self._scratch.get(slot)
        n = self.adj.num_nodes
        if sc is None:
            sc = (np.zeros((n + 63) // 64, dtype=np.uint64), np.empty(n, dtype=np.int32)) + _edge_buffers(0)
        if sc[2].shape[0] < capacity:
            sc = sc[:2] + _edge_buffers(int(capacity * 1.25) + 1024)
        self._scratch[slot] = sc
        return sc


def _edge_buffers(cap: int) -> tuple[np.ndarray, ...]:
    """src, dst, eid and their sort scratch for ``cap`` edges."""
    return (np.empty(cap, dtype=np.int32), np.empty(cap, dtype=np.int32), np.empty(cap, dtype=np.int64),
            np.empty(cap, dtype=np.int32), np.empty(cap, dtype=np.int32), np.empty(cap, dtype=np.int64))
