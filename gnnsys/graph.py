"""``Graph``: a CSR graph on torch tensors, the one graph type of gnnsys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from gnnsys.errors import GraphError

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx


class Graph:
    """A directed graph in CSR form: row ``u`` lists the out-neighbours of ``u``.

    ``indptr`` (int64, ``N+1``) and ``indices`` (int64, ``E``) are the CSR arrays;
    ``edge_ids`` (optional, int64, ``E``) maps each CSR position to the id of the
    edge in the order it was given (``from_edge_index`` keeps it). Undirected graphs
    store both directions. A message flows along an edge ``u -> v`` from ``u`` to
    ``v``, as in PyG's ``edge_index[0] -> edge_index[1]``.

    The arrays are validated once, at construction (``validate=False`` skips it for
    arrays that are known to be valid, e.g. built by gnnsys itself).
    """

    def __init__(
        self,
        indptr: torch.Tensor,
        indices: torch.Tensor,
        edge_ids: torch.Tensor | None = None,
        num_nodes: int | None = None,
        validate: bool = True,
    ) -> None:
        self.indptr = torch.as_tensor(indptr, dtype=torch.long)
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.edge_ids = None if edge_ids is None else torch.as_tensor(edge_ids, dtype=torch.long)
        self._num_nodes = int(num_nodes) if num_nodes is not None else self.indptr.numel() - 1
        self._rev: Graph | None = None
        if validate:
            self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check the CSR invariants; raise ``GraphError`` naming the problem."""
        ip, ix = self.indptr, self.indices
        if ip.dim() != 1 or ix.dim() != 1:
            raise GraphError("Graph: indptr and indices must be 1-D tensors")
        if ip.numel() != self._num_nodes + 1:
            raise GraphError(
                f"Graph: indptr has {ip.numel()} entries but num_nodes={self._num_nodes} needs "
                f"{self._num_nodes + 1}"
            )
        if ip.numel() == 0 or int(ip[0]) != 0 or int(ip[-1]) != ix.numel():
            raise GraphError(
                f"Graph: indptr must start at 0 and end at len(indices)={ix.numel()} "
                f"(got {int(ip[0]) if ip.numel() else 'empty'}..{int(ip[-1]) if ip.numel() else 'empty'})"
            )
        if ip.numel() > 1 and bool((ip[1:] < ip[:-1]).any()):
            raise GraphError("Graph: indptr must be non-decreasing (a sorted CSR row pointer)")
        if ix.numel() and (int(ix.min()) < 0 or int(ix.max()) >= self._num_nodes):
            raise GraphError(
                f"Graph: neighbour ids must lie in [0, {self._num_nodes}); found "
                f"{int(ix.min())}..{int(ix.max())}"
            )
        if self.edge_ids is not None and self.edge_ids.numel() != ix.numel():
            raise GraphError("Graph: edge_ids must have one entry per edge")

    # --------------------------------------------------------------- properties
    @property
    def num_nodes(self) -> int:
        return self._num_nodes

    @property
    def num_edges(self) -> int:
        return self.indices.numel()

    @property
    def device(self) -> torch.device:
        return self.indices.device

    def degree(self, mode: str = "out") -> torch.Tensor:
        """Out-degree (CSR row lengths) or in-degree (``mode="in"``) of every node."""
        if mode == "out":
            return self.indptr[1:] - self.indptr[:-1]
        if mode == "in":
            return torch.bincount(self.indices, minlength=self._num_nodes)
        raise ValueError(f"degree(mode=...) takes 'out' or 'in', not {mode!r}")

    def row(self) -> torch.Tensor:
        """Source node of every CSR position."""
        return torch.repeat_interleave(
            torch.arange(self._num_nodes, device=self.device), self.degree()
        )

    def __repr__(self) -> str:
        return f"Graph(num_nodes={self.num_nodes}, num_edges={self.num_edges}, device={self.device})"

    # ------------------------------------------------------------- conversions
    @classmethod
    def from_edge_index(
        cls,
        edge_index: torch.Tensor,
        num_nodes: int | None = None,
        make_undirected: bool = False,
        remove_self_loops: bool = False,
        dedupe: bool = False,
    ) -> Graph:
        """Build a CSR graph from a ``[2, E]`` COO ``edge_index`` (vectorized: one sort).

        ``edge_ids`` records, for each CSR position, the column of ``edge_index`` it came
        from (after ``make_undirected``, reverse edges get ids ``E..2E-1``).
        """
        edge_index = torch.as_tensor(edge_index)
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise GraphError(
                f"edge_index must have shape [2, E]; got {tuple(edge_index.shape)} "
                "(transpose an [E, 2] array with .t())"
            )
        if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
            raise GraphError(f"edge_index must hold integer node ids, not {edge_index.dtype}")
        edge_index = edge_index.long()
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        if edge_index.numel():
            lo, hi = int(edge_index.min()), int(edge_index.max())
            if lo < 0 or hi >= num_nodes:
                raise GraphError(
                    f"edge_index holds node ids {lo}..{hi} but num_nodes={num_nodes}: ids must lie in "
                    f"[0, {num_nodes}). Pass the right num_nodes or drop the bad edges."
                )
        src, dst = edge_index[0], edge_index[1]
        if make_undirected:
            src, dst = torch.cat([src, dst]), torch.cat([dst, src])
        eid = None  # None: the identity 0..E-1 (reverse edges of make_undirected are E..2E-1)
        if remove_self_loops:
            keep = src != dst
            src, dst = src[keep], dst[keep]
            eid = keep.nonzero().view(-1)
        # Sort by (src, dst) with one key sort; stable keeps given order for duplicates. Source
        # and target come back out of the sorted key by arithmetic, and the edge ids are the
        # permutation itself: random gathers of 20M entries cost more than the sort.
        n = max(num_nodes, 1)
        key, perm = torch.sort(src * n + dst, stable=True)
        src = torch.div(key, n, rounding_mode="floor")
        dst = key - src * n
        eid = perm if eid is None else eid[perm]
        if dedupe and key.numel():
            first = torch.ones_like(key, dtype=torch.bool)
            first[1:] = key[1:] != key[:-1]
            src, dst, eid = src[first], dst[first], eid[first]
        counts = torch.bincount(src, minlength=num_nodes)
        indptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=src.device)
        torch.cumsum(counts, 0, out=indptr[1:])
        return cls(indptr, dst, eid, num_nodes=num_nodes, validate=False)

    def to_edge_index(self) -> torch.Tensor:
        """COO ``[2, E]`` in CSR order (sources sorted)."""
        return torch.stack([self.row(), self.indices])

    def reverse(self) -> Graph:
        """The graph with every edge reversed (CSR of the in-neighbours); cached."""
        if self._rev is None:
            ei = self.to_edge_index()
            g = Graph.from_edge_index(ei.flip(0), self.num_nodes)
            if self.edge_ids is not None:
                g.edge_ids = self.edge_ids[g.edge_ids]
            self._rev = g
        return self._rev

    def is_symmetric(self) -> bool:
        """True when every edge ``u -> v`` has its reverse ``v -> u`` (multiset equality)."""
        ei = self.to_edge_index()
        n = max(self.num_nodes, 1)
        a = torch.sort(ei[0] * n + ei[1]).values
        b = torch.sort(ei[1] * n + ei[0]).values
        return bool(torch.equal(a, b))

    def subgraph(self, nodes: torch.Tensor) -> tuple[Graph, torch.Tensor]:
        """Induced subgraph on ``nodes`` (unique global ids); returns it and the global
        edge ids (CSR positions of this graph) of its edges. Vectorized."""
        nodes = torch.as_tensor(nodes, dtype=torch.long, device=self.device)
        local = torch.full((self.num_nodes,), -1, dtype=torch.long, device=self.device)
        local[nodes] = torch.arange(nodes.numel(), device=self.device)
        deg = self.degree()[nodes]
        starts = self.indptr[nodes]
        seg = torch.repeat_interleave(torch.arange(nodes.numel(), device=self.device), deg)
        offs = torch.arange(int(deg.sum()), device=self.device) - torch.repeat_interleave(
            torch.cumsum(deg, 0) - deg, deg
        )
        pos = starts[seg] + offs
        nbr_local = local[self.indices[pos]]
        keep = nbr_local >= 0
        src_l, dst_l, pos = seg[keep], nbr_local[keep], pos[keep]
        counts = torch.bincount(src_l, minlength=nodes.numel())
        indptr = torch.zeros(nodes.numel() + 1, dtype=torch.long, device=self.device)
        torch.cumsum(counts, 0, out=indptr[1:])
        return Graph(indptr, dst_l, pos, num_nodes=nodes.numel(), validate=False), pos

    def to(self, device: torch.device | str) -> Graph:
        """Copy of the graph on ``device``."""
        return Graph(
            self.indptr.to(device),
            self.indices.to(device),
            None if self.edge_ids is None else self.edge_ids.to(device),
            num_nodes=self.num_nodes,
            validate=False,
        )

    def to_pyg(self) -> Any:
        """A ``torch_geometric.data.Data`` with ``edge_index`` and ``num_nodes``."""
        from torch_geometric.data import Data

        return Data(edge_index=self.to_edge_index(), num_nodes=self.num_nodes)

    def to_dgl(self) -> Any:
        """A ``dgl.DGLGraph`` with the same edges (needs the ``dgl`` extra)."""
        try:
            import dgl
        except ImportError as e:  # pragma: no cover - exercised when dgl is absent
            raise ImportError("Graph.to_dgl needs DGL: pip install 'gnnsys[dgl]'") from e
        ei = self.to_edge_index()
        return dgl.graph((ei[0], ei[1]), num_nodes=self.num_nodes)

    @classmethod
    def from_networkx(cls, g: nx.Graph) -> tuple[Graph, list]:
        """Build from a networkx graph. Undirected graphs get both directions.
        Returns the graph and the node list (position = gnnsys node id)."""
        import networkx as nx  # noqa: F401

        nodes = list(g.nodes())
        index = {n: i for i, n in enumerate(nodes)}
        if g.number_of_edges():
            ei = torch.tensor([[index[u], index[v]] for u, v in g.edges()], dtype=torch.long).t()
        else:
            ei = torch.empty(2, 0, dtype=torch.long)
        return cls.from_edge_index(ei, len(nodes), make_undirected=not g.is_directed()), nodes

    def to_networkx(self, directed: bool = True) -> nx.Graph:
        """A networkx ``DiGraph`` (or ``Graph`` with ``directed=False``) on nodes ``0..N-1``."""
        import networkx as nx

        g = nx.DiGraph() if directed else nx.Graph()
        g.add_nodes_from(range(self.num_nodes))
        g.add_edges_from(self.to_edge_index().t().tolist())
        return g
