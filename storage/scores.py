"""Hotness scores of feature rows: what a static cache ranks rows by.

Every score is a float64 numpy array with one entry per node; higher means "read more often".
``ranking(score)`` turns a score into an order (hottest first, ties by smaller id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gnnsys.errors import ConfigError, DataFormatError, GraphError
from gnnsys.graph import Graph


def check_graph_rows(graph: Graph, num_rows: int, what: str = "the feature matrix") -> None:
    """``GraphError`` unless ``graph`` has one node per row of ``what``."""
    if not isinstance(graph, Graph):
        raise GraphError(f"graph must be a gnnsys Graph, got {type(graph).__name__}")
    if graph.num_nodes != num_rows:
        raise GraphError(
            f"{what} has {num_rows} rows but the graph has {graph.num_nodes} nodes: row i must hold the "
            "features of node i; pass the features of this graph (or the graph of these features)")


def degree_score(graph: Graph) -> np.ndarray:
    """Out-degree (Data Tiering's and Quiver's simplest score; on an undirected graph the degree)."""
    return graph.degree("out").cpu().numpy().astype(np.float64)


def _node_ids(train_nodes: Any, n: int, what: str = "train_nodes") -> np.ndarray:
    """Distinct node ids (a bool mask or integer ids in ``[0, n)``) as int64 numpy."""
    t = torch.as_tensor(train_nodes).cpu()
    if t.dtype == torch.bool:
        if t.numel() != n:
            raise GraphError(f"{what} mask has {t.numel()} entries for {n} nodes; pass one entry per node")
        t = t.nonzero().flatten()
    if t.dtype.is_floating_point or t.dim() != 1:
        raise GraphError(f"{what} must be a 1-D tensor of integer node ids (or a bool mask), got "
                         f"dtype {t.dtype} and shape {tuple(t.shape)}")
    t = t.long()
    if t.numel() == 0:
        raise GraphError(f"{what} is empty; pass at least one node id (or None for all nodes)")
    if int(t.min()) < 0 or int(t.max()) >= n:
        raise GraphError(f"{what} holds ids {int(t.min())}..{int(t.max())} outside [0, {n}) of the graph")
    return np.unique(t.numpy())


def csr_row_sums(indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over each CSR row (``values`` aligned with the CSR entries)."""
    cs = np.zeros(values.shape[0] + 1, np.float64)
    np.cumsum(values, out=cs[1:])
    return cs[indptr[1:]] - cs[indptr[:-1]]


def reverse_pagerank(graph: Graph, train_nodes: Any = None, alpha: float = 0.85, tol: float = 1e-6,
                     max_iter: int = 200) -> np.ndarray:
    """Data Tiering's score (Min et al., KDD 2022): PageRank on the *reversed* graph with the
    teleport (and dangling mass) on the training nodes. A walker starts at a training node and
    steps from a node ``v`` to one of its in-neighbours ``u`` (the sources of the messages ``v``
    aggregates), so mass collects on the rows that training batches read through their
    neighbourhoods. Power iteration to an L1 change below ``tol``; ``ConfigError`` if it does
    not converge within ``max_iter`` steps."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"reverse_pagerank: alpha must be in (0, 1), got {alpha}")
    n = graph.num_nodes
    indptr = graph.indptr.cpu().numpy()
    indices = graph.indices.cpu().numpy()
    p = np.zeros(n, np.float64)
    if train_nodes is None:
        p[:] = 1.0 / n
    else:
        t = _node_ids(train_nodes, n)
        p[t] = 1.0 / t.size
    indeg = np.bincount(indices, minlength=n).astype(np.float64)
    dangling = indeg == 0
    inv = np.divide(1.0, indeg, out=np.zeros(n), where=~dangling)
    r = p.copy()
    for _ in range(max_iter):
        pushed = csr_row_sums(indptr, (r * inv)[indices])  # u collects from every out-neighbour v
        r_new = alpha * (pushed + r[dangling].sum() * p) + (1.0 - alpha) * p
        err = float(np.abs(r_new - r).sum())
        r = r_new
        if err < tol:
            return r
    raise ConfigError(f"reverse_pagerank did not converge to {tol:g} in {max_iter} iterations "
                      f"(last change {err:.3g}); raise max_iter or tol")


def count_score(counts: Any, num_nodes: int, what: str = "counts") -> np.ndarray:
    """Access counts as a score: GraphSAINT's pre-sampling ``C_v`` (``sampler.stats.node_count``)
    or counts of a recorded trace."""
    c = torch.as_tensor(counts).detach().cpu()
    if c.dim() != 1 or c.numel() != num_nodes:
        raise DataFormatError(f"{what} must hold one count per node ({num_nodes}), got shape {tuple(c.shape)}; "
                              "pass sampler.stats.node_count of a sampler on this graph")
    if c.dtype == torch.bool or c.dtype.is_complex:
        raise DataFormatError(f"{what} must be numeric counts, got {c.dtype}")
    out = c.double().numpy()
    if not np.isfinite(out).all() or (out < 0).any():
        raise DataFormatError(f"{what} must be finite and >= 0")
    return out


def trace_counts(trace: Sequence[Any], num_nodes: int) -> np.ndarray:
    """How many batches of ``trace`` read each row (duplicates inside a batch count once): the
    future access counts whose top rows are the best static set."""
    counts = np.zeros(num_nodes, np.float64)
    for b in trace:
        ids = np.unique(torch.as_tensor(b).cpu().numpy())
        counts[ids] += 1.0
    return counts


def ranking(score: np.ndarray) -> np.ndarray:
    """Node ids by descending score, ties by ascending id."""
    return np.argsort(-np.asarray(score, np.float64), kind="stable")
