"""The four GraphSAINT samplers (Zeng et al., ICLR 2020): node, edge, random walk and
multi-dimensional random walk. Each draws a node multiset on the sampling graph with the
paper's probabilities; ``SaintSampler`` dedupes it and returns the *induced* subgraph.

Degrees are ``deg(v) = (in + out) / 2`` of the sampling graph: for an undirected graph (both
directions stored) that is exactly the degree.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
from gnnsys.samplers.saint_base import SaintSampler
from gnnsys.samplers.saint_kernels import searchsorted_right_sorted

from gnnsys.errors import ConfigError
from gnnsys.graph import Graph


def _check_int(name: str, value: Any, lo: int, hi: int | None = None, what: str = "") -> int:
    """``value`` as an int in ``[lo, hi]``, else ``ConfigError`` naming the limit."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{name} must be {rng}{what}, got {v}")
    return v


def _sym_degree(g: Graph) -> torch.Tensor:
    """``in + out`` degree (twice the degree of an undirected graph), int64."""
    return g.degree("out") + g.degree("in")


class SaintNodeSampler(SaintSampler):
    """Node sampler: ``budget`` draws with replacement, ``P(v) ∝ deg(v)``; induced subgraph.

    Draws run over the sampling graph: the training nodes (``graph_mode="train"``) or every
    node (``"full"``); ``budget`` may not exceed that node count."""

    name = "saint-node"

    def __init__(self, graph: Graph, budget: int, train_nodes: Any = None, seed: int = 0, **kw: Any) -> None:
        super().__init__(graph, train_nodes, seed, **kw)
        n_s = self.sg.num_nodes
        self.budget = _check_int("budget", budget, 1, n_s, f" (the sampling graph has {n_s} nodes)")
        deg = _sym_degree(self.sg)
        self._cum = torch.cumsum(deg, 0)
        self._total = int(self._cum[-1])
        self._cum_np = self._cum.numpy() if self._cpu else None

    def params(self) -> dict[str, Any]:
        return {"budget": self.budget}

    def probabilities(self) -> torch.Tensor:
        """Exact draw probability of every sampling-graph node."""
        deg = torch.diff(self._cum, prepend=self._cum.new_zeros(1)).double()
        return deg / deg.sum()

    def _draw(self, gen: Any) -> Any:
        if not self._cpu:
            return self._draw_group([gen])[0]
        r = gen.integers(0, self._total, self.budget)
        r.sort()  # the multiset of draws is all that matters: sorted, each search starts at the last
        return searchsorted_right_sorted(self._cum_np, r)

    def _draw_group(self, gens: list[Any]) -> Any:
        if self._cpu:
            return [self._draw(g) for g in gens]
        # each subgraph's own random stream, one search for the whole group
        r = torch.cat([torch.randint(0, self._total, (self.budget,), generator=g, device=self.device)
                       for g in gens])
        return torch.searchsorted(self._cum, r, right=True).view(len(gens), -1)

    def _expected_train_size(self) -> float:
        p = self.probabilities()[self.train_sg]
        return float((1.0 - torch.exp(self.budget * torch.log1p(-p.clamp_max(1 - 1e-15)))).sum())


def _uniform_neighbour(g: Graph, cur: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """A uniform out-neighbour of each ``cur`` given uniforms ``r`` in [0, 1); nodes without
    neighbours stay where they are."""
    start = g.indptr[cur]
    deg = g.indptr[cur + 1] - start
    off = torch.minimum((r * deg).long(), (deg - 1).clamp_min(0))
    pos = (start + off).clamp_max(max(g.num_edges - 1, 0))
    return torch.where(deg > 0, g.indices[pos], cur)


def _uniform_neighbour_np(indptr: np.ndarray, indices: np.ndarray, cur: np.ndarray, r: np.ndarray) -> np.ndarray:
    """numpy ``_uniform_neighbour``."""
    start = indptr[cur]
    deg = indptr[cur + 1] - start
    off = np.minimum((r * deg).astype(np.int64), np.maximum(deg - 1, 0))
    pos = np.minimum(start + off, max(indices.shape[0] - 1, 0))
    return np.where(deg > 0, indices[pos], cur)


class SaintEdgeSampler(SaintSampler):
    """Edge sampler: ``budget`` edges drawn with replacement, ``P(u, v) ∝ 1/deg(u) + 1/deg(v)``
    (the paper's reciprocal form); the nodes are the endpoints; induced subgraph.

    On an undirected sampling graph this is drawn in O(1) per edge, exactly: pick ``a``
    uniformly among the nodes with edges, then ``b`` a uniform neighbour of ``a``; the pair
    ``{a, b}`` then has probability ``(1/deg(a) + 1/deg(b)) / n_nonisolated``. On a directed
    graph the directed entries are drawn from their cumulative weights
    (``deg = (in + out) / 2``)."""

    name = "saint-edge"

    def __init__(self, graph: Graph, budget: int, train_nodes: Any = None, seed: int = 0, **kw: Any) -> None:
        super().__init__(graph, train_nodes, seed, **kw)
        m = self.sg.num_edges
        self.budget = _check_int("budget", budget, 1, m, f" (the sampling graph has {m} edges)")
        if self.symmetric:
            self._nonisolated = (self.sg.degree() > 0).nonzero().flatten()
        else:
            self._cdf = torch.cumsum(self._edge_weights(), 0)
            self._total = float(self._cdf[-1])

    def _edge_weights(self) -> torch.Tensor:
        g = self.sg
        inv = 2.0 / _sym_degree(g).double()
        return inv[g.row()] + inv[g.indices]

    def params(self) -> dict[str, Any]:
        return {"budget": self.budget}

    def probabilities(self) -> torch.Tensor:
        """Exact draw probability of every directed entry (CSR position) of the sampling graph
        (on an undirected graph, an edge's probability is the sum over its two entries)."""
        w = self._edge_weights()
        return w / w.sum()

    def edge_draws_from(self, gen: Any) -> Any:
        """``[2, budget]`` endpoints (sampling-graph ids) of the edges drawn with ``gen``."""
        g, b = self.sg, self.budget
        if self._cpu:
            indptr, indices = g.indptr.numpy(), g.indices.numpy()
            if self.symmetric:
                nz = self._nonisolated.numpy()
                a = nz[gen.integers(0, nz.shape[0], b)]
                return np.stack([a, _uniform_neighbour_np(indptr, indices, a, gen.random(b))])
            u = gen.random(b) * self._total
            u.sort()  # sorted queries: cache-friendly search
            pos = np.minimum(np.searchsorted(self._cdf.numpy(), u, side="right"), g.num_edges - 1)
            return np.stack([np.searchsorted(indptr, pos, side="right") - 1, indices[pos]])
        if self.symmetric:  # torch: the group draw, for a group of one
            return self._draw_group([gen])[0].view(2, b)
        u = torch.rand(b, generator=gen, dtype=torch.float64, device=self.device) * self._total
        pos = torch.searchsorted(self._cdf, u, right=True).clamp_max(g.num_edges - 1)
        return torch.stack([torch.searchsorted(g.indptr, pos, right=True) - 1, g.indices[pos]])

    def _draw(self, gen: Any) -> Any:
        return self.edge_draws_from(gen).reshape(-1)

    def _draw_group(self, gens: list[Any]) -> Any:
        if self._cpu or not self.symmetric:
            return [self._draw(g) for g in gens]
        # a uniform node with edges, then a uniform neighbour (see the class docstring), with each
        # subgraph's own stream and one neighbour step for the whole group
        b, nz, dev = self.budget, self._nonisolated, self.device
        a = torch.cat([torch.randint(0, nz.numel(), (b,), generator=g, device=dev) for g in gens])
        r = torch.cat([torch.rand(b, generator=g, dtype=torch.float64, device=dev) for g in gens])
        a = nz[a]
        ends = torch.stack([a, _uniform_neighbour(self.sg, a, r)]).view(2, len(gens), b)
        return ends.transpose(0, 1).reshape(len(gens), 2 * b)

    def edge_draws(self, k: int) -> torch.Tensor:
        """``[2, budget]`` endpoints drawn for subgraph ``k`` (tests of the distribution)."""
        return torch.as_tensor(self.edge_draws_from(self._generator(k)))

    def _expected_train_size(self) -> float:
        g = self.sg
        p = self.probabilities()
        q = torch.zeros(g.num_nodes, dtype=torch.float64, device=p.device)
        q.index_add_(0, g.row(), p).index_add_(0, g.indices, p)
        q = q[self.train_sg].clamp_max(1 - 1e-15)
        return float((1.0 - torch.exp(self.budget * torch.log1p(-q))).sum())


class SaintRandomWalkSampler(SaintSampler):
    """Random-walk sampler: ``num_roots`` roots uniform over the training nodes (with
    replacement), each walks ``walk_length`` uniform-neighbour steps; all visited nodes;
    induced subgraph. A walk at a node without neighbours stays there."""

    name = "saint-rw"

    def __init__(self, graph: Graph, num_roots: int, walk_length: int, train_nodes: Any = None,
                 seed: int = 0, **kw: Any) -> None:
        super().__init__(graph, train_nodes, seed, **kw)
        self.num_roots = _check_int("num_roots", num_roots, 1, self.num_train,
                                    f" (there are {self.num_train} training nodes)")
        self.walk_length = _check_int("walk_length", walk_length, 1)

    def params(self) -> dict[str, Any]:
        return {"num_roots": self.num_roots, "walk_length": self.walk_length}

    def walks(self, gens: list[Any]) -> Any:
        """Visited nodes ``[S, walk_length + 1, num_roots]`` of one walk set per generator."""
        r, L = self.num_roots, self.walk_length
        if self._cpu:
            indptr, indices, train = self.sg.indptr.numpy(), self.sg.indices.numpy(), self.train_sg.numpy()
            cur = train[np.concatenate([g.integers(0, self.num_train, r) for g in gens])]
            step = np.concatenate([g.random((L, r)) for g in gens], 1)
            visited = [cur]
            for i in range(L):
                cur = _uniform_neighbour_np(indptr, indices, cur, step[i])
                visited.append(cur)
            return np.stack(visited).reshape(L + 1, len(gens), r).transpose(1, 0, 2)
        roots, steps = [], []
        for gen in gens:
            roots.append(torch.randint(0, self.num_train, (r,), generator=gen, device=self.device))
            steps.append(torch.rand(L, r, generator=gen, dtype=torch.float64, device=self.device))
        cur = self.train_sg[torch.cat(roots)]
        step = torch.cat(steps, 1)
        visited_t = [cur]
        for i in range(L):
            cur = _uniform_neighbour(self.sg, cur, step[i])
            visited_t.append(cur)
        return torch.stack(visited_t).view(L + 1, len(gens), r).permute(1, 0, 2)

    def _draw_group(self, gens: list[Any]) -> Any:
        w = self.walks(gens)
        if self._cpu:
            return [w[s].reshape(-1) for s in range(len(gens))]
        return w.reshape(len(gens), -1)


class SaintMultiDimRandomWalkSampler(SaintSampler):
    """Multi-dimensional random walk (frontier) sampler: a frontier of ``frontier_size``
    distinct training nodes (uniform); at each of ``budget`` steps a frontier node is popped
    with probability ∝ its degree, replaced by a uniform neighbour, and the visit recorded.
    Nodes: the initial frontier and every visit; induced subgraph.

    Vectorized exactly: slot ``i`` of the frontier fires after an ``Exp(deg)`` time and jumps
    to a uniform neighbour; the slots are independent continuous-time walks, and the merged
    order of their jumps picks slot ``i`` with probability ``deg_i / Σ deg`` at every step,
    which is the MRW. All slots are advanced together until the first ``budget`` jumps are
    known (the jumps before the ``budget``-th earliest time ``τ``)."""

    name = "saint-mrw"

    def __init__(self, graph: Graph, budget: int, frontier_size: int, train_nodes: Any = None,
                 seed: int = 0, **kw: Any) -> None:
        super().__init__(graph, train_nodes, seed, **kw)
        self.budget = _check_int("budget", budget, 1)
        self.frontier_size = _check_int("frontier_size", frontier_size, 1, self.num_train,
                                        f" (there are {self.num_train} training nodes)")
        self._deg = self.sg.degree("out").double()

    def params(self) -> dict[str, Any]:
        return {"budget": self.budget, "frontier_size": self.frontier_size}

    def initial_frontier(self, gen: Any) -> Any:
        """``frontier_size`` distinct training nodes, uniformly at random."""
        f, n = self.frontier_size, self.num_train
        if self._cpu:
            return self.train_sg.numpy()[gen.choice(n, f, replace=False)]
        if 4 * f >= n:
            idx = torch.randperm(n, generator=gen, device=self.device)[:f]
        else:  # distinct values in order of first appearance of i.i.d. draws: a uniform subset
            draws = torch.randint(0, n, (2 * f + 16,), generator=gen, device=self.device)
            while True:
                uniq, inv = torch.unique(draws, return_inverse=True)
                first = torch.full((uniq.numel(),), draws.numel(), dtype=torch.long, device=self.device)
                first.scatter_reduce_(0, inv, torch.arange(draws.numel(), device=self.device), "amin")
                if uniq.numel() >= f:
                    idx = uniq[torch.argsort(first)][:f]
                    break
                more = torch.randint(0, n, (f + 16,), generator=gen, device=self.device)
                draws = torch.cat([draws, more])
        return self.train_sg[idx]

    def _draw(self, gen: Any) -> Any:
        frontier = self.initial_frontier(gen)
        visits, _ = self.race(frontier, gen)
        if self._cpu:
            return np.concatenate([frontier, visits])
        return torch.cat([frontier, visits])

    def race(self, frontier: Any, gen: Any) -> tuple[Any, Any]:
        """The first ``budget`` visits of the MRW from ``frontier`` (node ids, and the frontier
        slot each came from), in step order."""
        if self._cpu:
            return self._race_np(np.asarray(frontier), gen)
        dev = self.device
        state = frontier.clone()
        slot_ids = torch.arange(state.numel(), device=dev)
        t = torch.empty(state.numel(), dtype=torch.float64, device=dev).exponential_(generator=gen)
        t = t / self._deg[state]  # inf for degree 0: never fires
        ev_t, ev_v, ev_s = [], [], []
        n_ev, tau = 0, float("inf")
        while True:
            active = (t < tau).nonzero().flatten()
            if active.numel() == 0:
                break
            cur = state[active]
            r = torch.rand(active.numel(), generator=gen, dtype=torch.float64, device=dev)
            nxt = _uniform_neighbour(self.sg, cur, r)
            ev_t.append(t[active])
            ev_v.append(nxt)
            ev_s.append(slot_ids[active])
            n_ev += active.numel()
            state[active] = nxt
            e = torch.empty(active.numel(), dtype=torch.float64, device=dev).exponential_(generator=gen)
            t[active] = t[active] + e / self._deg[nxt]
            if n_ev >= self.budget:
                ev_t, ev_v, ev_s = [torch.cat(ev_t)], [torch.cat(ev_v)], [torch.cat(ev_s)]
                tau = float(torch.kthvalue(ev_t[0].cpu(), self.budget).values)
        if n_ev == 0:
            empty = frontier.new_empty(0)
            return empty, empty
        times, nodes, slots = torch.cat(ev_t), torch.cat(ev_v), torch.cat(ev_s)
        order = torch.argsort(times)[: self.budget]
        return nodes[order], slots[order]

    def _race_np(self, frontier: np.ndarray, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """numpy ``race`` (CPU)."""
        indptr, indices = self.sg.indptr.numpy(), self.sg.indices.numpy()
        deg = self._deg.numpy()
        state = frontier.copy()
        with np.errstate(divide="ignore"):
            t = gen.standard_exponential(state.shape[0]) / deg[state]
        ev_t, ev_v, ev_s = [], [], []
        n_ev, tau = 0, np.inf
        while True:
            active = np.flatnonzero(t < tau)
            if active.shape[0] == 0:
                break
            nxt = _uniform_neighbour_np(indptr, indices, state[active], gen.random(active.shape[0]))
            ev_t.append(t[active])
            ev_v.append(nxt)
            ev_s.append(active)
            n_ev += active.shape[0]
            state[active] = nxt
            with np.errstate(divide="ignore"):
                t[active] = t[active] + gen.standard_exponential(active.shape[0]) / deg[nxt]
            if n_ev >= self.budget:
                ev_t, ev_v, ev_s = [np.concatenate(ev_t)], [np.concatenate(ev_v)], [np.concatenate(ev_s)]
                tau = float(np.partition(ev_t[0], self.budget - 1)[self.budget - 1])
        if n_ev == 0:
            return frontier[:0], frontier[:0]
        times, nodes, slots = np.concatenate(ev_t), np.concatenate(ev_v), np.concatenate(ev_s)
        order = np.argsort(times, kind="stable")[: self.budget]
        return nodes[order], slots[order]
