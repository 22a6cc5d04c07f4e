"""Layer-wise inference: a model's outputs for every node without the whole feature matrix in
memory (as DGL's and PyG's layer-wise inference).

Layer 1 runs for all nodes in chunks of target nodes: a chunk's targets ``T`` (a range of node
ids) and their in-neighbours ``N(T)`` form a small batch whose operator rows are the full
graph's rows of ``T`` (so every normalization is the full graph's: the outputs of ``T`` equal
full-batch ones) and whose edges are the in-edges of ``T`` (attention, GIN sums); the inputs of
``T ∪ N(T)`` stream through the feature store (``gather``), the outputs of ``T`` are kept. Then
layer 2 runs the same way on layer 1's outputs, and so on. Each intermediate matrix is kept in
memory when it fits ``memory_limit``, else spilled to a file in the cache folder (removed at
the end).

    logits = layerwise_forward(model, dataset)                  # node tasks: the head's outputs
    h = layerwise_forward(model, dataset, head=False)           # embeddings (link tasks)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnnsys.batch import MiniBatch
from gnnsys.dataset import Dataset
from gnnsys.errors import ConfigError

DEFAULT_CHUNK = 8192


def on_disk(store: Any) -> bool:
    """Whether ``store``'s rows live on disk (an out-of-core store): evaluation is then layer-wise."""
    from gnnsys.storage.out_of_core import OutOfCoreStore

    return isinstance(store, OutOfCoreStore)


class _Rows:
    """An intermediate ``n x width`` matrix: in memory, or a spill file in ``folder``."""

    def __init__(self, n: int, width: int, memory_limit: float, folder: Path) -> None:
        self.path: Path | None = None
        if n * width * 4 <= memory_limit:
            self.x = torch.empty((n, width), dtype=torch.float32)
            return
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="layerwise-", suffix=".npy", dir=folder)
        os.close(fd)
        self.path = Path(name)
        try:
            self._mm = np.lib.format.open_memmap(self.path, "w+", np.float32, (n, width))
        except OSError as e:
            self.path.unlink(missing_ok=True)
            raise ConfigError(f"layer-wise inference: cannot spill a {n} x {width} intermediate to {folder} ({e}); "
                              "point GNNSYS_CACHE (or cache_dir) at a folder with room") from None
        self.x = torch.from_numpy(self._mm)

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        return self.x.index_select(0, ids)

    def close(self) -> None:
        if self.path is not None:
            del self._mm
            self.x = None
            self.path.unlink(missing_ok=True)


def _dense_rows_as_csr(op: torch.Tensor, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(crow, col, values)`` of rows ``a:b`` of a CSR or dense operator (crow starts at 0)."""
    if op.is_sparse_csr:
        crow = op.crow_indices()
        e0, e1 = int(crow[a]), int(crow[b])
        return crow[a:b + 1] - e0, op.col_indices()[e0:e1], op.values()[e0:e1]
    part = op[a:b].to_sparse_csr()
    return part.crow_indices(), part.col_indices(), part.values()


@torch.no_grad()
def layerwise_forward(model: torch.nn.Module, dataset: Dataset, *, head: bool = True, chunk_nodes: int = DEFAULT_CHUNK,
                      memory_limit: float | None = None, cache_dir: str | os.PathLike | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """Outputs of ``model`` (a ``GNNStack``, in eval mode) for every node of ``dataset``,
    computed layer by layer (see the module docstring); ``head=False`` returns the last layer's
    states. ``memory_limit``: bytes an intermediate may take in memory (default: the store's
    idle batch buffers for an out-of-core store, else no limit); ``cache_dir``: where spills go."""
    from gnnsys.loading import operator_norms
    from gnnsys.samplers.full import full_graph
    from gnnsys.storage.packed import default_cache_dir

    if getattr(model.head, "all_layers", False):
        raise ConfigError("layer-wise inference serves node and link models; a graph readout needs each graph whole")
    if chunk_nodes < 1:
        raise ConfigError(f"layer-wise inference: chunk_nodes must be >= 1, got {chunk_nodes}")
    device = torch.device(device)
    store = dataset.features
    if memory_limit is None:
        split = getattr(store, "split", None)
        memory_limit = split.batch_buffers if split is not None else float("inf")
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "layerwise"
    if hasattr(store, "end_epoch"):  # an out-of-core store: not a planned epoch's reads
        store.end_epoch()
    model.eval()
    full = full_graph(dataset)
    n = dataset.num_nodes
    norms = operator_norms(model)
    ops = {norm: full.adj(norm) for norm in norms}
    uses_edges = any(getattr(la, "propagation", None) not in norms for la in model.layers)
    if uses_edges:  # in-edges of a chunk's targets, contiguous after a stable sort by target
        ei = full.edge_index
        perm = torch.sort(ei[1], stable=True).indices
        src_sorted, dst_sorted = ei[0][perm], ei[1][perm]
        eptr = torch.searchsorted(dst_sorted, torch.arange(n + 1))
        ew = None if full.edge_weight is None else full.edge_weight[perm]
    loc = torch.full((n,), -1, dtype=torch.long)
    chunks = [(a, min(n, a + chunk_nodes)) for a in range(0, n, chunk_nodes)]

    def sub_batch(a: int, b: int) -> MiniBatch:
        """Targets ``a:b`` first, then their in-neighbours; operator rows and in-edges of the targets."""
        t = torch.arange(a, b)
        parts = {norm: _dense_rows_as_csr(op, a, b) for norm, op in ops.items()}
        srcs = [p[1] for p in parts.values()]
        if uses_edges:
            e0, e1 = int(eptr[a]), int(eptr[b])
            srcs.append(src_sorted[e0:e1])
        cand = torch.cat(srcs) if srcs else torch.zeros(0, dtype=torch.long)
        cand = torch.unique(cand[(cand < a) | (cand >= b)])
        nodes = torch.cat([t, cand])
        m = nodes.numel()
        loc[nodes] = torch.arange(m)
        edge_index, edge_weight = torch.zeros((2, 0), dtype=torch.long), None
        if uses_edges:
            edge_index = torch.stack([loc[src_sorted[e0:e1]], dst_sorted[e0:e1] - a])
            edge_weight = None if ew is None else ew[e0:e1]
        sb = MiniBatch(node_ids=nodes, edge_index=edge_index, edge_weight=edge_weight)
        for norm, (crow, col, val) in parts.items():
            crow = torch.cat([crow, crow[-1:].expand(m - (b - a))])
            sb._adj[norm] = torch.sparse_csr_tensor(crow, loc[col], val, size=(m, m), check_invariants=False)
        loc[nodes] = -1
        return sb

    prev: _Rows | None = None
    try:
        for i in range(model.num_layers):
            out: _Rows | None = None
            for a, b in chunks:
                sb = sub_batch(a, b)
                if i == 0:
                    if store is not None:
                        sb.x = store.gather(sb.node_ids)
                    h = model.encode(sb.to(device))
                else:
                    sb = sb.to(device)
                    h = prev.gather(sb.node_ids.cpu()).to(device)
                y = model.forward_layer(i, h, sb)[: b - a].float().cpu()
                if out is None:
                    out = _Rows(n, y.size(1), memory_limit, folder)
                out.x[a:b] = y
            if prev is not None:
                prev.close()
            prev = out
        if not head:
            res = prev.x.clone() if prev.path is not None else prev.x
            return res
        logits = [model.head(prev.x[a:b].to(device), None).cpu() for a, b in chunks]
        return torch.cat(logits)
    finally:
        if prev is not None and prev.path is not None:
            prev.close()
