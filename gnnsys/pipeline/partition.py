"""Balanced node partitions (METIS through DGL) and the per-part local graphs built from them.

METIS comes from ``dgl.metis_partition_assignment`` (DGL 1.1.3 ships METIS in its CPU
library, and DGL is already the project's interop dependency; pymetis would be a second copy
of the same library). It balances node counts and minimizes the edge cut, which is what both
schemes want: equal work per chunk or partition, and few boundary rows.
"""

from __future__ import annotations

import contextlib
import io

import torch

from gnnsys.errors import ConfigError
from gnnsys.graph import Graph


def metis_assignment(graph: Graph, k: int) -> torch.Tensor:
    """Part id in ``[0, k)`` of every node (int64), from METIS with balanced node counts.

    ``k == 1`` needs no METIS. Raises ``ConfigError`` when DGL is missing, when ``k`` exceeds
    the node count, or when METIS leaves a part empty."""
    n = graph.num_nodes
    if k < 1:
        raise ConfigError(f"a partition needs k >= 1 parts, got {k}")
    if k > n:
        raise ConfigError(f"cannot split {n} nodes into {k} parts; use fewer chunks/stages")
    if k == 1:
        return torch.zeros(n, dtype=torch.long)
    try:
        import dgl
    except ImportError as e:  # pragma: no cover - dgl is an extra
        raise ConfigError("GNNPipe partitions the graph with METIS through DGL: pip install 'gnnsys[dgl]'") from e
    ei = graph.to_edge_index()
    g = dgl.graph((ei[0], ei[1]), num_nodes=n)
    with contextlib.redirect_stdout(io.StringIO()):  # DGL prints timing lines for every call
        parts = dgl.metis_partition_assignment(g, k).long()
    sizes = torch.bincount(parts, minlength=k)
    if int(sizes.min()) == 0:
        raise ConfigError(f"METIS left {int((sizes == 0).sum())} of {k} parts empty on a {n}-node graph; "
                          "use fewer chunks/stages")
    return parts


def part_nodes(assignment: torch.Tensor, k: int) -> list[torch.Tensor]:
    """The sorted node ids of each part."""
    order = torch.argsort(assignment, stable=True)
    sizes = torch.bincount(assignment, minlength=k).tolist()
    return list(torch.split(order, sizes))


def in_neighbours(graph: Graph, nodes: torch.Tensor) -> torch.Tensor:
    """Sources of the edges into ``nodes`` that are not themselves in ``nodes`` (the halo), sorted.

    ``Graph`` stores CSR by source; the graphs here store both directions of undirected edges,
    but the halo is taken from the ``edge_index`` targets so directed graphs are right too."""
    ei = graph.to_edge_index()
    inside = torch.zeros(graph.num_nodes, dtype=torch.bool)
    inside[nodes] = True
    src = ei[0][inside[ei[1]]]
    src = src[~inside[src]]
    return torch.unique(src)


def halo_sizes(graph: Graph, assignment: torch.Tensor, k: int) -> list[int]:
    """Halo size of every part (remote in-neighbours, each counted once per part that needs it)."""
    ei = graph.to_edge_index()
    src, dst = ei[0], ei[1]
    cut = assignment[src] != assignment[dst]
    key = torch.unique(assignment[dst][cut] * graph.num_nodes + src[cut])
    return torch.bincount(key // graph.num_nodes, minlength=k).tolist()
