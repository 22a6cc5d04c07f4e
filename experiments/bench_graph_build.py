"""Time to build a CSR graph from a COO edge list of ~20M edges, against peers in the same run.

    python -m gnnsys.experiments.bench_graph_build [--num-nodes 1000000] [--num-edges 20000000]

Peers: SciPy (``coo_matrix(...).tocsr()``), PyG (``to_torch_csr_tensor``), DGL 1.1.3
(``dgl.graph`` then ``adj_tensors('csr')``) when installed. Prints a markdown table with
seconds and the ratio peer / gnnsys.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from gnnsys import Graph


def _time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-nodes", type=int, default=1_000_000)
    p.add_argument("--num-edges", type=int, default=20_000_000)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    n, m = args.num_nodes, args.num_edges
    g = torch.Generator().manual_seed(0)
    ei = torch.randint(0, n, (2, m), generator=g)

    def ours() -> object:
        return Graph.from_edge_index(ei, n)

    def scipy_csr() -> object:
        import scipy.sparse as sp

        u, v = ei[0].numpy(), ei[1].numpy()
        return sp.coo_matrix((np.ones(m, dtype=np.float32), (u, v)), shape=(n, n)).tocsr()

    def pyg_csr() -> object:
        from torch_geometric.utils import to_torch_csr_tensor

        return to_torch_csr_tensor(ei, size=(n, n))

    def dgl_csr() -> object:
        import dgl

        return dgl.graph((ei[0], ei[1]), num_nodes=n).adj_tensors("csr")

    rows = [("gnnsys Graph.from_edge_index", ours), ("scipy coo->csr", scipy_csr), ("PyG to_torch_csr_tensor", pyg_csr)]
    try:
        import dgl  # noqa: F401

        rows.append(("DGL 1.1.3 graph + csr", dgl_csr))
    except ImportError:
        pass
    # correctness against numpy (scipy's tocsr would merge the duplicate pairs a random
    # multigraph has, so it is timed but not compared): row counts, and each row's columns
    # in ascending order
    a = ours()
    u, v = ei[0].numpy(), ei[1].numpy()
    assert np.array_equal(a.indptr.numpy(), np.concatenate([[0], np.cumsum(np.bincount(u, minlength=n))])), \
        "CSR row pointers differ from numpy's bincount"
    assert np.array_equal(a.indices.numpy(), v[np.lexsort((v, u))]), "CSR columns differ from numpy's lexsort"
    times = {name: _time(fn, args.repeats) for name, fn in rows}
    base = times[rows[0][0]]
    print(f"CSR build, {n:,} nodes, {m:,} edges, {torch.get_num_threads()} threads (best of {args.repeats})")
    print("| builder | seconds | ratio (peer / gnnsys) |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {t:.2f} | {t / base:.2f} |")


if __name__ == "__main__":
    main()
