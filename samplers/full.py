"""Full-graph, graph-batch and link-pair mini-batch sources."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from gnnsys.batch import MiniBatch
from gnnsys.dataset import Dataset
from gnnsys.errors import ConfigError


def _ranges(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Concatenation of ``arange(s, s+l)`` for every (s, l), vectorized."""
    total = int(lengths.sum())
    offs = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return torch.repeat_interleave(starts, lengths) + torch.arange(total) - offs


def draw_non_edges(num_nodes: int, edge_keys: torch.Tensor, count: int, generator: torch.Generator,
                   rounds: int = 100) -> torch.Tensor:
    """Up to ``count`` uniform random pairs ``[2, <=count]`` that are neither self-loops nor edges.

    ``edge_keys`` are the sorted keys ``src * num_nodes + dst`` of the edges. Pairs that hit an
    edge are redrawn, up to ``rounds`` times; those still bad after that are dropped (only on a
    nearly complete graph), so the result can be shorter than ``count``."""
    dev = edge_keys.device

    def hits(pairs: torch.Tensor) -> torch.Tensor:
        bad = pairs[0] == pairs[1]
        if edge_keys.numel():
            keys = pairs[0] * num_nodes + pairs[1]
            pos = torch.searchsorted(edge_keys, keys).clamp_(max=edge_keys.numel() - 1)
            bad |= edge_keys[pos] == keys
        return bad

    pairs = torch.randint(0, num_nodes, (2, count), generator=generator, device=dev)
    for _ in range(rounds):
        bad = hits(pairs)
        nbad = int(bad.sum())
        if nbad == 0:
            return pairs
        pairs[:, bad] = torch.randint(0, num_nodes, (2, nbad), generator=generator, device=dev)
    return pairs[:, ~hits(pairs)]


def full_graph(dataset: Dataset) -> MiniBatch:
    """The structure of the whole graph as one batch (no features: the loading pipeline's
    fetch stage adds them): node ids ``arange(N)``, the edges in the graph's CSR order, edge
    ids, the graph index of graph tasks; ``all_nodes`` set."""
    g = dataset.graph
    graph_index = None
    if dataset.graph_ptr is not None:
        sizes = dataset.graph_ptr[1:] - dataset.graph_ptr[:-1]
        graph_index = torch.repeat_interleave(torch.arange(sizes.numel()), sizes)
    return MiniBatch(
        node_ids=torch.arange(g.num_nodes),
        edge_index=g.to_edge_index(),
        y=dataset.labels if dataset.task == "graph" else None,
        edge_ids=g.edge_ids,
        graph_index=graph_index,
        num_graphs=dataset.num_graphs,
        all_nodes=True,
    )


class FullGraphLoader:
    """Yields the whole graph as one ``MiniBatch`` per epoch, with ``target`` = ``split`` ids.

    The batch is built once and reused, so the loading pipeline fetches its features and
    builds its operators once."""

    def __init__(self, dataset: Dataset, split: str = "train", device: str | torch.device = "cpu") -> None:
        self.dataset, self.split = dataset, split
        self.batch = full_graph(dataset)
        if dataset.task == "node":
            self.batch.target = dataset.split[split]

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[MiniBatch]:
        yield self.batch

    def state_dict(self) -> dict:
        """Nothing changes between epochs (checkpoints)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """See ``state_dict``."""


class GraphBatchLoader:
    """Batches of whole graphs from a graph-task ``Dataset`` (PyG ``DataLoader`` semantics:
    ``batch_size`` graphs per batch, ``shuffle`` each epoch with a seeded generator).

    Collation is vectorized: node and edge ranges of the chosen graphs are gathered at once."""

    def __init__(self, dataset: Dataset, graph_ids: torch.Tensor, batch_size: int = 32,
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False) -> None:
        if dataset.graph_ptr is None:
            raise ValueError(f"{dataset.name} is not a graph-classification dataset")
        self.dataset = dataset
        self.graph_ids = torch.as_tensor(graph_ids, dtype=torch.long)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        """The shuffling generator's state (checkpoints)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Continue the shuffling where ``state_dict`` left it."""
        self.generator.set_state(state["generator"])

    def __len__(self) -> int:
        n = self.graph_ids.numel()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def collate(self, gids: torch.Tensor) -> MiniBatch:
        """One ``MiniBatch`` holding graphs ``gids`` (in that order)."""
        ds, g = self.dataset, self.dataset.graph
        ptr = ds.graph_ptr
        nstart, nlen = ptr[gids], ptr[gids + 1] - ptr[gids]
        nodes = _ranges(nstart, nlen)
        new_start = torch.cumsum(nlen, 0) - nlen
        estart, eend = g.indptr[nstart], g.indptr[nstart + nlen]
        elen = eend - estart
        pos = _ranges(estart, elen)
        shift = torch.repeat_interleave(new_start - nstart, elen)
        src = _rows_of(g, pos) + shift
        dst = g.indices[pos] + shift
        graph_index = torch.repeat_interleave(torch.arange(gids.numel()), nlen)
        return MiniBatch(
            node_ids=nodes,
            edge_index=torch.stack([src, dst]),
            y=None if ds.labels is None else ds.labels[gids],
            edge_ids=pos,
            graph_index=graph_index,
            num_graphs=gids.numel(),
        )

    def __iter__(self) -> Iterator[MiniBatch]:
        ids = self.graph_ids
        if self.shuffle:
            ids = ids[torch.randperm(ids.numel(), generator=self.generator)]
        for i in range(len(self)):
            yield self.collate(ids[i * self.batch_size:(i + 1) * self.batch_size])


def _rows_of(g, pos: torch.Tensor) -> torch.Tensor:
    """Source node of CSR positions ``pos`` (binary search in ``indptr``)."""
    return torch.searchsorted(g.indptr, pos, right=True) - 1


class LinkBatchLoader:
    """Batches of positive training pairs with sampled negatives, on the full graph.

    Each batch is the full-graph ``MiniBatch`` with ``pos_edges`` (a slice of the shuffled
    training pairs) and ``neg_edges`` (``num_neg`` random pairs per positive). With
    ``exclude_edges=True`` (the default, as PyG's ``negative_sampling``) a negative is a pair
    that is not an edge of the message-passing graph and not a self-loop: uniform draws that
    hit one are redrawn (on dense graphs such as ogbl-ddi, about 12% of all pairs are edges)."""

    def __init__(self, dataset: Dataset, batch_size: int = 65536, num_neg: int = 1, seed: int = 0,
                 device: str | torch.device = "cpu", exclude_edges: bool = True) -> None:
        if dataset.task != "link":
            raise ValueError(f"{dataset.name} is not a link-prediction dataset")
        self.dataset, self.batch_size, self.num_neg = dataset, batch_size, num_neg
        self.device = torch.device(device)
        self.base = full_graph(dataset)
        self.pos = dataset.split["train"]
        self.generator = torch.Generator().manual_seed(seed)
        self.edge_keys = None
        if exclude_edges:
            ei = dataset.graph.to_edge_index()
            self.edge_keys = torch.sort(ei[0] * dataset.num_nodes + ei[1]).values

    def __len__(self) -> int:
        return -(-self.pos.size(1) // self.batch_size)

    def state_dict(self) -> dict:
        """The generator's state (pair shuffling and negatives; checkpoints)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Continue the pair shuffling and negatives where ``state_dict`` left them."""
        self.generator.set_state(state["generator"])

    def negatives(self, k: int) -> torch.Tensor:
        """``k`` random negative pairs ``[2, k]``."""
        n = self.dataset.num_nodes
        if self.edge_keys is None:
            return torch.randint(0, n, (2, k), generator=self.generator)
        pairs = draw_non_edges(n, self.edge_keys, k, self.generator)
        if pairs.size(1) < k:
            raise ConfigError(f"{self.dataset.name}: almost every node pair is an edge, so 100 rounds of uniform "
                              "draws found no negative pairs; use exclude_edges=False")
        return pairs

    def __iter__(self) -> Iterator[MiniBatch]:
        perm = torch.randperm(self.pos.size(1), generator=self.generator)
        for i in range(len(self)):
            pos = self.pos[:, perm[i * self.batch_size:(i + 1) * self.batch_size]]
            neg = self.negatives(pos.size(1) * self.num_neg)
            b = self.base
            yield MiniBatch(
                node_ids=b.node_ids, edge_index=b.edge_index, x=b.x, edge_weight=b.edge_weight,
                edge_ids=b.edge_ids, pos_edges=pos, neg_edges=neg, all_nodes=True, _adj=b._adj,
            )
