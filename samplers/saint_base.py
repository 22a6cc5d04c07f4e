"""``SaintSampler``: what the four GraphSAINT samplers share.

A sampler is a deterministic *stream* of subgraphs: subgraph ``k`` is drawn with a torch
generator seeded from ``(seed, k)`` alone, so the same seed gives the same subgraphs in any
process, in any grouping, with or without DataLoader workers. An epoch is the next
``len(sampler)`` indices of the stream; pre-sampling (``compute_normalization``) reads the
stream from index 0, so the pre-sampled subgraphs are the first mini-batches (served from
memory up to ``cache_limit_bytes``, beyond that re-drawn identically).

Sampling graph: with ``graph_mode="train"`` (inductive, the paper's setting) the subgraph
of ``graph`` induced by ``train_nodes``; with ``graph_mode="full"`` (transductive) the whole
graph, with random-walk roots over ``train_nodes`` and the loss on training nodes only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from gnnsys.samplers.full import draw_non_edges
from gnnsys.samplers.saint_induce import GroupInducer, Induced, OrientedAdjacency
from gnnsys.samplers.saint_norm import AGGR_CLIP, UNSEEN_EDGE_MODES, SaintMiniBatch, SaintStatistics
from torch.utils.data import IterableDataset, get_worker_info

from gnnsys.config import DEFAULT_SAINT_UNSEEN_EDGES
from gnnsys.errors import ConfigError, GraphError
from gnnsys.graph import Graph
from gnnsys.threads import BACKGROUND_NICE, in_background, thread_pool, usable_cores

GRAPH_MODES = ("train", "full")
UNSEEN_WARN_RATE = 0.01  # expected unseen edges per later subgraph above which "clip" warns
_MASK64 = (1 << 64) - 1


def _mix(seed: int, k: int) -> int:
    """A 63-bit generator seed for subgraph ``k`` of stream ``seed`` (splitmix64)."""
    z = (seed * 0x9E3779B97F4A7C15 + (k + 1) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


class SaintSampler(IterableDataset):
    """Base class: subclasses implement ``_draw(gen)`` (raw node ids of the sampling graph,
    repeats allowed) and may override ``_draw_group`` / ``_expected_train_size``.

    Args:
        graph: the dataset's graph (CSR; edge ids in batches are its CSR positions).
        train_nodes: training node ids (default: all nodes).
        seed: stream seed.
        graph_mode: ``"train"`` (induced training graph) or ``"full"`` (whole graph).
        num_subgraphs: subgraphs per epoch (default ``ceil(|V_train| / E[train nodes per
            subgraph])``, measured by pre-sampling once it has run).
        link_pairs: ``[2, k]`` global training positive pairs (link tasks): batches then carry
            ``pos_edges`` (pairs inside the subgraph) and as many uniform ``neg_edges``.
        device: where sampling runs and batches live (default: the graph's device).
        group_size: subgraphs drawn per call (spread over cores on CPU).
        aggr_norm: ``"graph"`` (original: normalize by the sampling-graph degree, batches are
            ``SaintMiniBatch``) or ``"subgraph"`` (plain ``MiniBatch``: layers normalize by the
            subgraph's weighted degree).
        unseen_edges: weight of an edge that pre-sampling never saw (``C_uv = 0 < C_v``):
            ``"once"`` (counted as seen once: ``C_v``; the default) or ``"clip"`` (the
            paper-exact original: ``1e4``).
            With ``"clip"`` a warning says when later subgraphs are expected to hold such
            edges (see ``saint_norm``).
        cache_limit_bytes: memory for keeping pre-sampled subgraphs.
        num_threads: CPU threads drawing/inducing a group in parallel (default: usable cores).
        backend: ``"auto"`` (numpy + numba kernels on CPU, torch elsewhere) or ``"torch"``
            (the pure-torch path of GPUs, also on CPU: for tests).
    """

    name = "saint"

    def __init__(
        self,
        graph: Graph,
        train_nodes: torch.Tensor | Sequence[int] | None = None,
        seed: int = 0,
        *,
        graph_mode: str = "train",
        num_subgraphs: int | None = None,
        link_pairs: torch.Tensor | None = None,
        device: torch.device | str | None = None,
        group_size: int = 8,
        aggr_norm: str = "graph",
        unseen_edges: str = DEFAULT_SAINT_UNSEEN_EDGES,
        cache_limit_bytes: int = 512 << 20,
        num_threads: int | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(graph, Graph):
            raise GraphError(f"{type(self).__name__} needs a gnnsys Graph, got {type(graph).__name__}")
        if graph_mode not in GRAPH_MODES:
            raise ConfigError(f"graph_mode must be one of {GRAPH_MODES}, not {graph_mode!r}")
        if aggr_norm not in ("graph", "subgraph"):
            raise ConfigError(f"aggr_norm must be 'graph' or 'subgraph', not {aggr_norm!r}")
        if unseen_edges not in UNSEEN_EDGE_MODES:
            raise ConfigError(f"unseen_edges must be one of {UNSEEN_EDGE_MODES}, not {unseen_edges!r}")
        if num_subgraphs is not None and num_subgraphs < 1:
            raise ConfigError(f"num_subgraphs must be >= 1, got {num_subgraphs}")
        if group_size < 1:
            raise ConfigError(f"group_size must be >= 1, got {group_size}")
        if backend not in ("auto", "torch"):
            raise ConfigError(f"backend must be 'auto' or 'torch', not {backend!r}")
        if graph.num_edges == 0:
            raise GraphError(f"{type(self).__name__}: the graph has no edges; GraphSAINT samples edges "
                             "and induced subgraphs, so it needs a graph with at least one edge")
        self.device = torch.device(device) if device is not None else graph.device
        self._use_numpy = self.device.type == "cpu" and backend == "auto"
        self.backend = backend
        self.seed, self.graph_mode = int(seed), graph_mode
        self.group_size, self.aggr_norm, self.unseen_edges = group_size, aggr_norm, unseen_edges
        self.cache_limit_bytes = cache_limit_bytes
        self.num_threads = int(num_threads) if num_threads else usable_cores()
        self._num_subgraphs = num_subgraphs
        n = graph.num_nodes
        self.num_nodes, self.num_edges = n, graph.num_edges
        cpu_graph = graph.to("cpu")
        train = self._check_train_nodes(train_nodes, n)
        self.train_mask = torch.zeros(n, dtype=torch.bool)
        self.train_mask[train] = True
        self.num_train = int(train.numel())
        # the sampling graph (ids "sg") and its maps to global ids
        if graph_mode == "train" and self.num_train < n:
            sg, emap = cpu_graph.subgraph(train)
            if sg.num_edges == 0:
                raise GraphError(f"{type(self).__name__}: the training nodes have no edges among them; "
                                 "use graph_mode='full' (transductive) or another split")
            self._node_map: torch.Tensor | None = train
            self.train_sg = torch.arange(self.num_train)
        else:
            sg, emap = cpu_graph, None
            self._node_map = None
            self.train_sg = train
        self.sg = sg
        # the kernel build (CPU, numba) pairs both directions of an undirected edge in one
        # entry, which halves the entries the CUDA inducer scans too
        oriented = OrientedAdjacency.build(sg, emap, use_kernel=backend == "auto")
        self._inducer = GroupInducer(oriented.to(self.device), use_kernel=self._use_numpy)
        self.symmetric = oriented.symmetric  # the sampling graph is undirected
        # in-degree of every global node inside the sampling graph (the original's norm degree)
        deg_sg = sg.degree("in").float()
        self.norm_degree = deg_sg if self._node_map is None else torch.zeros(n).index_copy_(
            0, self._node_map, deg_sg)
        self.edge_dst = cpu_graph.indices
        self.link_pairs = None if link_pairs is None else torch.as_tensor(link_pairs, dtype=torch.long)
        self.stats: SaintStatistics | None = None
        self._edge_norm: torch.Tensor | None = None
        self._loss_norm: torch.Tensor | None = None
        self._cache: dict[int, Induced] = {}
        self._pos = 0
        self._mean_train: float | None = None
        self._to_device()

    # --------------------------------------------------------------------- setup
    @staticmethod
    def _check_train_nodes(train_nodes: Any, n: int) -> torch.Tensor:
        if train_nodes is None:
            return torch.arange(n)
        t = torch.as_tensor(train_nodes)
        if t.dtype == torch.bool:
            if t.numel() != n:
                raise GraphError(f"train_nodes mask has {t.numel()} entries for {n} nodes")
            t = t.nonzero().flatten()
        if t.dtype.is_floating_point or t.dim() != 1:
            raise GraphError("train_nodes must be a 1-D tensor of integer node ids (or a bool mask)")
        t = t.long().cpu()
        if t.numel() == 0:
            raise GraphError("train_nodes is empty: there is nothing to train on")
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= n:
            raise GraphError(f"train_nodes holds ids {lo}..{hi} outside [0, {n}) of the graph")
        return torch.unique(t)

    def _to_device(self) -> None:
        d = self.device
        self.train_mask = self.train_mask.to(d)
        self.train_sg = self.train_sg.to(d)
        self.norm_degree = self.norm_degree.to(d)
        self.edge_dst = self.edge_dst.to(d)
        if self._node_map is not None:
            self._node_map = self._node_map.to(d)
        self.sg = self.sg.to(d)
        if self.link_pairs is not None:
            self.link_pairs = self.link_pairs.to(d)
            self._gmark = torch.full((self.num_nodes,), -1, dtype=torch.long, device=d)

    def signature(self) -> dict[str, Any]:
        """What the statistics depend on (checked when they are loaded from a file)."""
        return {"sampler": self.name, "params": self.params(), "seed": self.seed,
                "graph_mode": self.graph_mode, "num_nodes": self.num_nodes,
                "num_edges": self.num_edges, "num_train": self.num_train}

    def params(self) -> dict[str, Any]:
        """The sampler's own parameters (budgets)."""
        return {}

    # ------------------------------------------------------------------ drawing
    @property
    def _cpu(self) -> bool:
        """True when draws and gathers run in numpy (CPU with the default backend)."""
        return self._use_numpy

    def _generator(self, k: int) -> Any:
        """Random source of subgraph ``k``: a numpy ``Generator`` on CPU (small numpy ops beat
        torch's thread pool there), a torch generator on other devices."""
        if self._cpu:
            return np.random.Generator(np.random.PCG64(_mix(self.seed, k)))
        return torch.Generator(device=self.device).manual_seed(_mix(self.seed, k))

    def _draw(self, gen: Any) -> Any:
        """Raw node ids (sampling graph) of one subgraph, repeats allowed: a numpy array on
        CPU, a tensor on other devices."""
        raise NotImplementedError

    def _draw_group(self, gens: list[Any]) -> list[Any]:
        return [self._draw(g) for g in gens]

    def draws(self, k: int) -> torch.Tensor:
        """The raw draws of subgraph ``k`` (for tests of the sampling distribution)."""
        return torch.as_tensor(self._draw_group([self._generator(k)])[0])

    def _raw(self, ks: Sequence[int], csr: bool = True, take: bool = True) -> list[Induced]:
        """Induced subgraphs ``ks`` of the stream: (global node ids, local edge_index in CSR
        order of the targets, global edge ids, row pointer; ``csr=False``: possibly edges in
        any order and no row pointer, for counting only). Pre-sampled subgraphs come from the
        cache, which gives them up unless ``take=False``."""
        out: dict[int, Induced] = {}
        todo = []
        for k in ks:
            hit = self._cache.pop(k, None) if take else self._cache.get(k)
            if hit is not None:
                out[k] = hit
            else:
                todo.append(k)
        if todo:
            for k, (nodes, edge_index, eids, crow) in zip(todo, self._induce_indices(todo, csr)):
                if self._node_map is not None:
                    nodes = self._node_map[nodes]
                out[k] = (nodes, edge_index, eids, crow)
        return [out[k] for k in ks]

    def _induce_chunk(self, ks: Sequence[int], slot: int, csr: bool = True) -> list[Induced]:
        return self._inducer.induce(self._draw_group([self._generator(k) for k in ks]), slot, csr)

    def _induce_indices(self, ks: list[int], csr: bool = True) -> list[Induced]:
        """Draw and induce subgraphs ``ks`` (sampling-graph node ids). On CPU, outside
        DataLoader workers, the indices are dealt round-robin to ``num_threads`` threads
        (numpy and the numba kernel release the GIL)."""
        nt = min(self.num_threads, len(ks)) if self._cpu and get_worker_info() is None else 1
        if nt <= 1:
            return self._induce_chunk(ks, 0, csr)
        # from the loading pipeline's worker: a low-priority pool, so the model's threads win
        pool = thread_pool(nt, "saint-bg", BACKGROUND_NICE) if in_background() else thread_pool(nt, "saint")
        futs = [pool.submit(self._induce_chunk, ks[t::nt], t, csr) for t in range(nt)]
        parts = [f.result() for f in futs]
        res: list[Induced] = [None] * len(ks)  # type: ignore[list-item]
        for t, part in enumerate(parts):
            res[t::nt] = part
        return res

    # ------------------------------------------------------------------ batches
    def _take(self, table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``table[idx]`` (through numpy on CPU: no thread-pool overhead for mid-size gathers)."""
        if self._cpu:
            return torch.from_numpy(table.numpy()[idx.numpy()])
        return table[idx]

    def _batch(self, k: int, raw: Induced) -> SaintMiniBatch:
        nodes, edge_index, eids, crow = raw
        n_local = nodes.numel()
        if self._node_map is not None or self.num_train == self.num_nodes:  # all nodes train
            target = torch.arange(n_local, device=nodes.device)
        else:
            target = self._take(self.train_mask, nodes).nonzero().flatten()
        b = SaintMiniBatch(node_ids=nodes, edge_index=edge_index, edge_ids=eids, target=target, csr_ptr=crow,
                           symmetric=self.symmetric)
        if self._edge_norm is not None:
            b.edge_weight = self._take(self._edge_norm, eids)
            b.loss_weight = self._take(self._loss_norm, nodes[target])
            if self.aggr_norm == "graph":
                b.norm_degree = self._take(self.norm_degree, nodes)
        if self.link_pairs is not None:
            self._link_edges(b, k)
        return b

    def _link_edges(self, b: SaintMiniBatch, k: int) -> None:
        """Positive training pairs inside the subgraph and as many negative pairs: uniform pairs of
        subgraph nodes that are not edges and not self-loops (as the full-graph ``LinkBatchLoader``)."""
        nodes = b.node_ids
        self._gmark[nodes] = torch.arange(nodes.numel(), device=nodes.device)
        loc = self._gmark[self.link_pairs]
        self._gmark[nodes] = -1
        pos = loc[:, (loc >= 0).all(0)]
        gen = torch.Generator(device=self.device).manual_seed(_mix(self.seed ^ 0x5EED, k))  # own stream
        b.pos_edges = pos
        n = nodes.numel()
        keys = torch.sort(b.edge_index[0] * n + b.edge_index[1]).values
        b.neg_edges = draw_non_edges(n, keys, pos.size(1), gen)
        b.target, b.loss_weight = None, None

    def node_sets_at(self, ks: Sequence[int]) -> list[torch.Tensor]:
        """The node ids of subgraphs ``ks`` (each batch's ``node_ids``), without building the
        batches and without taking pre-sampled subgraphs out of the cache (an out-of-core
        store plans an epoch's reads with them before the epoch draws its batches)."""
        return [raw[0] for raw in self._raw(ks, csr=False, take=False)]

    def sample_at(self, ks: Sequence[int]) -> list[SaintMiniBatch]:
        """Mini-batches for stream indices ``ks``."""
        ks = list(ks)
        return [self._batch(k, raw) for k, raw in zip(ks, self._raw(ks))]

    def sample(self) -> SaintMiniBatch:
        """The next subgraph of the stream (advances the stream by one)."""
        b = self.sample_at([self._pos])[0]
        self._pos += 1
        return b

    # ---------------------------------------------------------------- iteration
    def _expected_train_size(self) -> float:
        """Expected training nodes per subgraph (default: mean over 4 probe subgraphs)."""
        raws = self._raw([-(i + 2) for i in range(4)], csr=False)
        return sum(float(self.train_mask[r[0]].sum()) for r in raws) / len(raws)

    def __len__(self) -> int:
        if self._num_subgraphs is not None:
            return self._num_subgraphs
        if self._mean_train is None:
            self._mean_train = max(self._expected_train_size(), 1e-9)
        return max(1, math.ceil(self.num_train / self._mean_train))

    def state_dict(self) -> dict[str, Any]:
        """Where the stream is (``pos``) and the normalization statistics (checkpoints)."""
        return {"pos": self._pos, "saint_stats": None if self.stats is None else self.stats.state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream at ``state["pos"]``, with the statistics it was drawn with
        (``ConfigError`` when they were computed for another sampler setup)."""
        saved = state.get("saint_stats")
        if saved is not None and (self.stats is None or not self.stats.same_counts(saved)):
            self.set_statistics(SaintStatistics.from_state(saved, self.signature(), self.device))
        self._pos = int(state["pos"])

    def set_epoch(self, epoch: int) -> None:
        """Point the stream at epoch ``epoch`` (use before a DataLoader epoch with workers)."""
        self._pos = epoch * len(self)

    def __iter__(self) -> Iterator[SaintMiniBatch]:
        n = len(self)
        start = self._pos
        info = get_worker_info()
        if info is None:
            self._pos += n
            ks = list(range(start, start + n))
        else:  # worker w serves every num_workers-th index: the loader's round-robin keeps order
            ks = list(range(start + info.id, start + n, info.num_workers))
        for i in range(0, len(ks), self.group_size):
            group = self.sample_at(ks[i:i + self.group_size])
            group.reverse()
            while group:  # popped, not iterated: the group must not keep a consumed batch (and the
                yield group.pop()  # features the pipeline attached to it) alive until its last batch

    def dataloader(self, num_workers: int = 0, **kw: Any) -> SaintLoader:
        """An iterable of epochs through ``torch.utils.data.DataLoader`` (``batch_size=None``)
        that advances the stream every epoch, as iterating the sampler itself does."""
        return SaintLoader(self, num_workers, **kw)

    # ------------------------------------------------------------ normalization
    def compute_normalization(self, coverage: float = 50.0, max_subgraphs: int | None = None) -> SaintSampler:
        """Pre-sample from stream index 0 until the sampled training nodes total
        ``coverage * |V_train|``; count ``C_v``, ``C_uv``, ``N``; turn on the weights.
        Pre-sampled subgraphs are kept (up to ``cache_limit_bytes``) as the first batches."""
        if not coverage > 0:
            raise ConfigError(f"coverage must be > 0, got {coverage}")
        stats = SaintStatistics(self.num_nodes, self.num_edges, self.device)
        target = coverage * self.num_train
        covered, k, used = 0, 0, 0
        room = True  # until a subgraph does not fit the cache: after that groups are only counted
        self._cache.clear()
        while covered < target and (max_subgraphs is None or k < max_subgraphs):
            ks = list(range(k, k + self.group_size))
            keep = room
            for kk, raw in zip(ks, self._raw(ks, csr=keep)):
                if covered < target and (max_subgraphs is None or k < max_subgraphs):
                    nodes, _, eids, _ = raw
                    stats.add(nodes, eids)
                    covered += int(self.train_mask[nodes].sum())
                    k += 1
                # every subgraph drawn (also past the end) is a later batch of the stream
                nbytes = sum(t.numel() * t.element_size() for t in raw if t is not None)
                if keep and used + nbytes <= self.cache_limit_bytes:
                    self._cache[kk] = tuple(t.clone() for t in raw)  # type: ignore[assignment]
                    used += nbytes
                else:
                    room = False
            if covered == 0 and k >= 1000:
                raise ConfigError(f"{type(self).__name__}: 1000 subgraphs held no training node; the "
                                  "training nodes cannot be reached (isolated?) by this sampler")
        stats.train_nodes_sampled = covered
        stats.meta = self.signature()
        self.set_statistics(stats)
        self._pos = 0
        return self

    def set_statistics(self, stats: SaintStatistics) -> None:
        """Use ``stats`` for the weights of every following batch."""
        self.stats = stats
        stats.node_count = stats.node_count.to(self.device)
        stats.edge_count = stats.edge_count.to(self.device)
        self._edge_norm = stats.edge_norm(self.edge_dst, self.unseen_edges)
        rate = stats.unseen_edge_rate() if self.unseen_edges == "clip" else 0.0  # only the clip warns
        if rate >= UNSEEN_WARN_RATE:
            warnings.warn(
                f"{type(self).__name__}: a later subgraph is expected to hold {rate:.2g} edge(s) that "
                f"pre-sampling never saw ({stats.num_subgraphs} subgraphs; Good-Turing estimate). Such an "
                f"edge gets the original GraphSAINT's clipped weight {AGGR_CLIP:g}, which can blow up a "
                "training step. Raise the coverage (--saint-coverage) or the budget, or count unseen "
                "edges as seen once (--saint-unseen-edges once).", stacklevel=3)
        self._loss_norm = stats.loss_norm(self.train_mask)
        if stats.num_subgraphs and stats.train_nodes_sampled:
            self._mean_train = stats.train_nodes_sampled / stats.num_subgraphs

    def save_normalization(self, path: Any) -> None:
        """Save the statistics (after ``compute_normalization``)."""
        if self.stats is None:
            raise ConfigError("no GraphSAINT statistics yet: call compute_normalization() first")
        self.stats.save(path)

    def load_normalization(self, path: Any) -> SaintSampler:
        """Load statistics saved for this same sampler setup (else ``ConfigError``)."""
        self.set_statistics(SaintStatistics.load(path, self.signature(), self.device))
        self._pos = 0
        return self


class SaintLoader:
    """Epochs of a ``SaintSampler`` through a ``DataLoader`` with ``num_workers`` workers."""

    def __init__(self, sampler: SaintSampler, num_workers: int = 0, **kw: Any) -> None:
        self.sampler, self.num_workers, self.kw = sampler, num_workers, kw

    def __len__(self) -> int:
        return len(self.sampler)

    def state_dict(self) -> dict[str, Any]:
        """The sampler's (checkpoints)."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """See ``SaintSampler.load_state_dict``."""
        self.sampler.load_state_dict(state)

    def __iter__(self) -> Iterator[SaintMiniBatch]:
        from torch.utils.data import DataLoader

        if self.num_workers == 0:
            yield from self.sampler
            return
        start = self.sampler._pos
        loader = DataLoader(self.sampler, batch_size=None, num_workers=self.num_workers, **self.kw)
        it = iter(loader)  # workers start here and take the sampler as it is now
        self.sampler._pos = start + len(self.sampler)
        yield from it
