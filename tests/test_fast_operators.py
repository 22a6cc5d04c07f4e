"""Sort-free CSR operators and the numba products equal the reference operators and a dense
computation: values and structure for every norm, weighted and unweighted, directed and
undirected graphs, isolated nodes; gradients through ``propagate`` equal dense autograd."""

import pytest
import torch

from gnnsys.graph import Graph
from gnnsys.sparse import NORMS, csr_operator, csr_transpose, propagate, propagation_matrix, spmm_cpu


def _row_sorted(edge_index: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row pointer (rows = targets), sources, and the permutation into that order (reference:
    a comparison sort)."""
    key = edge_index[1] * n + edge_index[0]
    order = torch.argsort(key)
    crow = torch.zeros(n + 1, dtype=torch.long)
    torch.cumsum(torch.bincount(edge_index[1], minlength=n), 0, out=crow[1:])
    return crow, edge_index[0][order], order


def _graph(n: int, m: int, undirected: bool, seed: int, isolated: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n - isolated, (2, m), generator=g)  # the last nodes stay isolated
    graph = Graph.from_edge_index(ei, n, make_undirected=undirected, remove_self_loops=True, dedupe=True)
    return graph.to_edge_index()


@pytest.mark.parametrize("device", ["cpu", "torch"])
@pytest.mark.parametrize("undirected", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("norm", NORMS)
def test_csr_operator_equals_propagation_matrix(norm, weighted, undirected, device):
    n = 80
    ei = _graph(n, 400, undirected, seed=1)
    w = torch.rand(ei.size(1)) + 0.1 if weighted else None
    crow, col, order = _row_sorted(ei, n)
    ref = propagation_matrix(ei, n, w, norm)
    if device == "cpu":
        op = csr_operator(crow, col, n, None if w is None else w[order], norm)
    else:  # the vectorized torch build of GPUs, run on CPU
        from gnnsys.sparse import _csr_operator_torch

        op = _csr_operator_torch(crow, col, n, torch.ones(col.numel()) if w is None else w[order], norm, None)
    assert torch.equal(op.crow_indices(), ref.crow_indices())
    assert torch.equal(op.col_indices(), ref.col_indices())
    torch.testing.assert_close(op.values(), ref.values(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("norm", NORMS)
def test_csr_operator_with_sampling_degree_equals_saint_operator(norm):
    from gnnsys.samplers.saint_norm import saint_propagation_matrix

    n = 60
    ei = _graph(n, 300, True, seed=2)
    w = torch.rand(ei.size(1)) * 3
    deg = torch.randint(0, 20, (n,)).float()
    crow, col, order = _row_sorted(ei, n)
    ref = saint_propagation_matrix(ei, n, w, deg, norm).to_dense()
    for build in ("cpu", "torch"):
        if build == "cpu":
            op = csr_operator(crow, col, n, w[order], norm, degree=deg)
        else:
            from gnnsys.sparse import _csr_operator_torch

            op = _csr_operator_torch(crow, col, n, w[order], norm, deg)
        torch.testing.assert_close(op.to_dense(), ref, rtol=1e-6, atol=1e-7)


def test_self_loops_in_the_graph_are_kept_beside_the_gcn_loop():
    ei = torch.tensor([[0, 1, 1, 2, 2], [1, 0, 1, 2, 0]])  # 1->1 and 2->2 are self loops
    n = 4
    crow, col, order = _row_sorted(ei, n)
    op = csr_operator(crow, col, n, None, "gcn")
    torch.testing.assert_close(op.to_dense(), propagation_matrix(ei, n, None, "gcn").to_dense())


@pytest.mark.parametrize("undirected", [True, False])
@pytest.mark.parametrize("norm", NORMS)
def test_propagate_gradient_equals_dense(norm, undirected):
    n = 70
    ei = _graph(n, 350, undirected, seed=3)
    crow, col, _ = _row_sorted(ei, n)
    op = csr_operator(crow, col, n, None, norm, symmetric=undirected)
    dense = op.to_dense().double()
    x = torch.randn(n, 9, dtype=torch.float64, requires_grad=True)
    g = torch.randn(n, 9, dtype=torch.float64)
    (propagate(op.to(torch.float64), x) * g).sum().backward()
    gx = x.grad.clone()
    x.grad = None
    ((dense @ x) * g).sum().backward()
    torch.testing.assert_close(gx, x.grad)
    x32 = x.detach().float().requires_grad_()
    out = propagate(op, x32)
    torch.testing.assert_close(out.double(), dense @ x.detach(), rtol=1e-5, atol=1e-5)
    (out * g.float()).sum().backward()
    torch.testing.assert_close(x32.grad.double(), dense.t() @ g, rtol=1e-5, atol=1e-5)


def test_symmetric_operator_is_its_own_transpose_and_others_are_transposed():
    n = 50
    ei = _graph(n, 200, True, seed=4)
    crow, col, _ = _row_sorted(ei, n)
    sym = csr_operator(crow, col, n, None, "gcn", symmetric=True)
    assert csr_transpose(sym) is sym
    torch.testing.assert_close(sym.to_dense(), sym.to_dense().t())
    mean = csr_operator(crow, col, n, None, "mean", symmetric=True)  # the mean operator is not symmetric
    t = csr_transpose(mean)
    assert t is not mean
    torch.testing.assert_close(t.to_dense(), mean.to_dense().t())


@pytest.mark.parametrize("kernel", ["numba", "mkl"])
@pytest.mark.parametrize("width", [10, 64, 128])
def test_spmm_threads_split_rows_identically(kernel, width, monkeypatch):
    """Both CPU kernels (numba, rows split over threads, prefetching ahead; MKL's, which
    ``spmm_cpu`` picks for narrow inputs) equal the dense product, whatever the thread count."""
    import gnnsys.sparse as sparse

    if kernel == "mkl" and not torch.backends.mkl.is_available():
        pytest.skip("torch without MKL")
    monkeypatch.setattr(sparse, "SPMM_MKL_MAX_COLUMNS", 0 if kernel == "numba" else 1 << 20)
    n = 3000
    ei = _graph(n, 60000, False, seed=5, isolated=50)
    crow, col, _ = _row_sorted(ei, n)
    op = csr_operator(crow, col, n, None, "mean")
    x = torch.randn(n, width)
    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = spmm_cpu(op, x)
        torch.set_num_threads(2)
        two = spmm_cpu(op, x)
    finally:
        torch.set_num_threads(prev)
    assert torch.equal(one, two)  # each row is summed by one thread in the same order
    torch.testing.assert_close(one, op.to_dense() @ x, rtol=1e-5, atol=1e-5)


def test_empty_operator():
    op = csr_operator(torch.zeros(4, dtype=torch.long), torch.zeros(0, dtype=torch.long), 3, None, "gcn")
    torch.testing.assert_close(op.to_dense(), torch.eye(3))
    x = torch.randn(3, 2, requires_grad=True)
    propagate(op, x).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(3, 2))


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("undirected", [True, False])
def test_sampled_batches_come_in_csr_order_with_equal_operators(backend, undirected):
    """Both inducers (numba kernel; torch, as on CUDA) emit the edges sorted by (dst, src) with
    the row pointer, and the batch's sort-free operators equal the reference operators, with
    and without GraphSAINT's normalization."""
    from gnnsys.samplers.saint_norm import saint_propagation_matrix
    from gnnsys.samplers.saint_samplers import SaintRandomWalkSampler

    n = 300
    ei = _graph(n, 2400, undirected, seed=6, isolated=0)
    graph = Graph.from_edge_index(ei, n)
    s = SaintRandomWalkSampler(graph, 40, 2, seed=1, backend=backend, group_size=3)
    for normalized in (False, True):
        if normalized:
            s.compute_normalization(5)
        for b in s.sample_at(range(5)):
            m = b.num_nodes
            key = b.edge_index[1] * m + b.edge_index[0]
            assert bool((key[1:] > key[:-1]).all())  # strictly sorted by (dst, src)
            crow = torch.zeros(m + 1, dtype=torch.long)
            torch.cumsum(torch.bincount(b.edge_index[1], minlength=m), 0, out=crow[1:])
            assert torch.equal(b.csr_ptr, crow)
            assert b.symmetric == undirected
            for norm in NORMS:
                if normalized:
                    ref = saint_propagation_matrix(b.edge_index, m, b.edge_weight, b.norm_degree, norm)
                else:
                    ref = propagation_matrix(b.edge_index, m, None, norm)
                op = b.adj(norm)
                torch.testing.assert_close(op.to_dense(), ref.to_dense(), rtol=1e-6, atol=1e-7)
                torch.testing.assert_close(csr_transpose(op).to_dense(), ref.to_dense().t(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("direction", ["both", "to-vn"])
def test_virtual_node_batches_keep_csr_order(direction):
    """ForwardGNN's class virtual nodes appended to a CSR-ordered batch: the same edges as the
    COO construction, in (dst, src) order with the right row pointer, so the operators match."""
    from gnnsys.samplers.saint_samplers import SaintNodeSampler

    from gnnsys.trainers.forward.common import with_virtual_nodes

    n = 200
    graph = Graph.from_edge_index(_graph(n, 1500, True, seed=7, isolated=0), n)
    s = SaintNodeSampler(graph, 120, seed=2)
    s.compute_normalization(4)
    b = s.sample_at([3])[0]
    x = torch.randn(b.num_nodes, 4)
    members = b.target[torch.randperm(b.target.numel(), generator=torch.Generator().manual_seed(0))][:40]
    classes = torch.randint(0, 3, (members.numel(),))
    fast = with_virtual_nodes(b, x, members, classes, 3, direction=direction)
    b.csr_ptr = None
    ref = with_virtual_nodes(b, x, members, classes, 3, direction=direction)
    m = fast.num_nodes
    key = fast.edge_index[1] * m + fast.edge_index[0]
    assert bool((key[1:] > key[:-1]).all())
    ref_key = ref.edge_index[1] * m + ref.edge_index[0]
    order = torch.argsort(ref_key)
    assert torch.equal(key, ref_key[order]) and torch.equal(fast.edge_weight, ref.edge_weight[order])
    crow = torch.zeros(m + 1, dtype=torch.long)
    torch.cumsum(torch.bincount(fast.edge_index[1], minlength=m), 0, out=crow[1:])
    assert torch.equal(fast.csr_ptr, crow)
    for norm in NORMS:
        torch.testing.assert_close(fast.adj(norm).to_dense(), ref.adj(norm).to_dense(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_symmetric_mean_operator_backward_without_transpose(dtype):
    """On an undirected structure the mean operator's backward multiplies by the unit
    adjacency after scaling the gradient by 1/deg (``P^T = A D^-1``); it equals dense autograd,
    isolated nodes included, and builds no transposed CSR."""
    from gnnsys.sparse import transpose_product

    n = 70
    ei = _graph(n, 300, True, seed=8, isolated=6)
    crow, col, _ = _row_sorted(ei, n)
    op = csr_operator(crow, col, n, None, "mean", symmetric=True)
    assert hasattr(op, "_gnnsys_mean_transpose") and not hasattr(op, "_gnnsys_transpose")
    dense = propagation_matrix(ei, n, None, "mean").to_dense().double()
    x = torch.randn(n, 5, dtype=torch.float64)
    g = torch.randn(n, 5, dtype=torch.float64)
    xd = x.to(dtype).requires_grad_()
    out = propagate(op, xd)
    (out * g.to(dtype)).sum().backward()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.double(), dense @ x, **tol)
    torch.testing.assert_close(xd.grad.double(), dense.t() @ g, **tol)
    assert not hasattr(op, "_gnnsys_transpose")  # no transposed CSR was built
    torch.testing.assert_close(transpose_product(op, g.float()).double(), dense.t() @ g, rtol=1e-5, atol=1e-6)
    # weighted or directed mean operators still use their built transpose
    w = torch.rand(col.numel()) + 0.5
    assert not hasattr(csr_operator(crow, col, n, w, "mean", symmetric=True), "_gnnsys_mean_transpose")
    assert not hasattr(csr_operator(crow, col, n, None, "mean"), "_gnnsys_mean_transpose")


def test_galloping_search_equals_numpy_searchsorted():
    import numpy as np
    from gnnsys.samplers.saint_kernels import searchsorted_right_sorted

    rng = np.random.default_rng(0)
    for n, k in [(1, 5), (7, 200), (100_000, 3000), (50, 100_000), (0, 4)]:
        table = np.cumsum(rng.integers(0, 4, n)).astype(np.int64)  # repeats: zero-degree nodes
        hi = int(table[-1]) + 3 if n else 3
        keys = np.sort(rng.integers(-2, hi, k))
        np.testing.assert_array_equal(searchsorted_right_sorted(table, keys), np.searchsorted(table, keys, "right"))
