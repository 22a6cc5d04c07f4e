"""Sparse propagation matrices (``torch.sparse_csr``, rows = targets, PyG's ``adj_t``).

Message passing with a CSR adjacency is several times faster on CPU than scatter over
``edge_index``, so full-graph and subgraph batches build these once and cache them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from gnnsys.threads import thread_pool

NORMS = ("sum", "mean", "gcn")

# A propagation operator is stored dense when it is this dense and small: on ogbl-ddi (4,267
# nodes, 12% dense) a dense matmul forward+backward is ~2x faster than CSR on 2 cores.
DENSE_MIN_DENSITY = 0.05
DENSE_MAX_NODES = 8192


def propagation_matrix(
    edge_index: torch.Tensor,
    num_nodes: int,
    edge_weight: torch.Tensor | None = None,
    norm: str = "sum",
    allow_dense: bool = False,
) -> torch.Tensor:
    """The ``N x N`` operator ``P`` with ``(P @ x)[v] = Σ_{u->v} p_uv x[u]``.

    - ``"sum"``:  ``p_uv = w_uv``
    - ``"mean"``: ``p_uv = w_uv / Σ_{u'} w_u'v`` (weighted mean over in-neighbours; a node
      with no in-edges gets a zero row)
    - ``"gcn"``:  ``P = D^-1/2 (A_w + I) D^-1/2`` with ``D_vv = 1 + Σ_u w_uv`` (Kipf & Welling,
      self loops with weight 1, degree taken on the target side as in PyG's ``gcn_norm``)

    ``w_uv`` is ``edge_weight`` (default 1). The result is a ``torch.sparse_csr`` tensor, or
    with ``allow_dense`` a dense one when the graph is small and dense enough that dense
    matmul is faster (``DENSE_MIN_DENSITY``, ``DENSE_MAX_NODES``).
    """
    if norm not in NORMS:
        raise ValueError(f"unknown propagation norm {norm!r}; choose one of {NORMS}")
    src, dst = edge_index[0], edge_index[1]
    dev = edge_index.device
    w = torch.ones(src.numel(), device=dev) if edge_weight is None else edge_weight.to(dev).float()
    if norm == "gcn":
        loop = torch.arange(num_nodes, device=dev)
        src, dst = torch.cat([src, loop]), torch.cat([dst, loop])
        w = torch.cat([w, torch.ones(num_nodes, device=dev)])
    if norm in ("mean", "gcn"):
        deg = torch.zeros(num_nodes, device=dev).index_add_(0, dst, w)
        if norm == "mean":
            w = w / deg.clamp_min(1e-12)[dst]
        else:
            dis = deg.clamp_min(1e-12).pow(-0.5)
            w = dis[src] * w * dis[dst]
    if allow_dense and 0 < num_nodes <= DENSE_MAX_NODES and w.numel() >= DENSE_MIN_DENSITY * num_nodes**2:
        dense = torch.zeros(num_nodes, num_nodes, device=dev)
        dense.index_put_((dst, src), w, accumulate=True)
        return dense
    key = dst * max(num_nodes, 1) + src
    order = torch.argsort(key)
    dst, src, w = dst[order], src[order], w[order]
    crow = torch.zeros(num_nodes + 1, dtype=torch.long, device=dev)
    torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0, out=crow[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, src, w, size=(num_nodes, num_nodes), check_invariants=False)


def csr_operator(
    crow: torch.Tensor,
    col: torch.Tensor,
    num_nodes: int,
    edge_weight: torch.Tensor | None = None,
    norm: str = "sum",
    degree: torch.Tensor | None = None,
    symmetric: bool = False,
) -> torch.Tensor:
    """``propagation_matrix`` of a graph already in row-sorted CSR form (rows = targets:
    ``col[crow[v]:crow[v+1]]`` are the sources of ``v``'s in-edges, ascending), built without
    a sort: the same operator, entry for entry, as ``propagation_matrix`` of the COO edges
    ``(col, row)``. ``edge_weight`` is aligned with ``col``.

    ``degree`` replaces the degree the norm divides by (GraphSAINT's sampling-graph in-degree
    ``d``): ``"mean"`` then uses ``w_uv / max(d_v, 1)`` and ``"gcn"`` ``w_uv / sqrt((d_u + 1)
    (d_v + 1))`` with self loops ``1 / (d_v + 1)``. ``symmetric`` declares the structure
    symmetric (an undirected graph): an unweighted ``"sum"`` or ``"gcn"`` operator is then its
    own transpose, which the backward pass of ``propagate`` uses instead of building one.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown propagation norm {norm!r}; choose one of {NORMS}")
    dev = col.device
    if dev.type == "cpu":
        op = _csr_operator_cpu(crow, col, num_nodes, edge_weight, norm, degree)
    else:
        w = torch.ones(col.numel(), device=dev) if edge_weight is None else edge_weight.to(dev).float()
        op = _csr_operator_torch(crow, col, num_nodes, w, norm, degree)
    if symmetric and edge_weight is None and degree is None:
        if norm in ("sum", "gcn"):
            op._gnnsys_transpose = op
        elif norm == "mean":
            _attach_mean_transpose(op, crow, col, num_nodes)
    return op


def _attach_mean_transpose(op: torch.Tensor, crow: torch.Tensor, col: torch.Tensor, n: int) -> None:
    """On a symmetric structure the mean operator ``P = D^-1 A`` has ``P^T = A D^-1``: the
    backward pass multiplies by the unit-valued ``A`` (same row pointer and columns) after
    scaling the gradient's rows by ``1 / deg``, so no transposed CSR is built."""
    if col.device.type == "cpu":  # numpy: small torch ops would each start the OpenMP team
        inv = torch.from_numpy(1.0 / np.maximum(np.diff(crow.numpy()), 1).astype(np.float32))
        ones = torch.from_numpy(np.ones(col.numel(), dtype=np.float32))
    else:
        inv = 1.0 / crow.diff().clamp_min(1).to(torch.float32)
        ones = torch.ones(col.numel(), dtype=torch.float32, device=col.device)
    op._gnnsys_mean_transpose = (_csr(crow, col, ones, n), inv)


def _csr(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, n: int) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, col, val, size=(n, n), check_invariants=False)


_NO_F32 = np.empty(0, dtype=np.float32)
_NO_F64 = np.empty(0, dtype=np.float64)


def _csr_operator_cpu(crow, col, n, edge_weight, norm, degree) -> torch.Tensor:
    """The CPU build: numba kernels and numpy only (small torch ops would each start the
    OpenMP team beside the model's, which costs more than the work on 2 busy cores)."""
    from gnnsys import sparse_kernels as K

    c, k = crow.numpy(), col.numpy()
    w = _NO_F32 if edge_weight is None else edge_weight.detach().float().numpy()
    if norm == "sum":
        val = np.ones(k.shape[0], dtype=np.float32) if edge_weight is None else w
        return _csr(crow, col, torch.from_numpy(val), n)
    d = _NO_F64 if degree is None else degree.detach().double().numpy()
    if norm == "mean":
        return _csr(crow, col, torch.from_numpy(K.mean_values(c, w, d)), n)
    if degree is not None:
        d = d + 1.0
    if edge_weight is None:
        w = np.empty(0, dtype=np.float32)
    ocrow, ocol, oval = K.gcn_csr(c, k, w, d)
    return _csr(torch.from_numpy(ocrow), torch.from_numpy(ocol), torch.from_numpy(oval), n)


def _csr_operator_torch(crow, col, n, w, norm, degree) -> torch.Tensor:
    """``csr_operator`` in vectorized torch (any device): the self loops of ``"gcn"`` are
    placed by index arithmetic, not by a sort."""
    dev = col.device
    lens = crow.diff()
    row = torch.repeat_interleave(torch.arange(n, device=dev), lens, output_size=col.numel())
    if norm == "sum":
        return _csr(crow, col, w, n)
    if norm == "mean":
        d = torch.zeros(n, device=dev).index_add_(0, row, w) if degree is None else degree.float().clamp_min(1.0)
        return _csr(crow, col, w / d.clamp_min(1e-12)[row], n)
    d = torch.zeros(n, device=dev).index_add_(0, row, w) + 1.0 if degree is None else degree.float() + 1.0
    dis = d.clamp_min(1e-12).pow(-0.5)
    val = dis[col] * w * dis[row]
    after = (col >= row).long()  # entries that follow the row's self loop
    before = lens - torch.zeros(n, dtype=torch.long, device=dev).index_add_(0, row, after)
    ocrow = crow + torch.arange(n + 1, device=dev)
    pos = torch.arange(col.numel(), device=dev) + row + after
    loop_pos = ocrow[:-1] + before
    ocol = torch.empty(col.numel() + n, dtype=torch.long, device=dev)
    oval = torch.empty(col.numel() + n, dtype=val.dtype, device=dev)
    ocol[pos], oval[pos] = col, val
    ocol[loop_pos], oval[loop_pos] = torch.arange(n, device=dev), dis * dis
    return _csr(ocrow, ocol, oval, n)


def is_operator(t: torch.Tensor) -> bool:
    """True for a propagation operator (CSR or dense float matrix), False for an ``edge_index``."""
    return t.is_sparse_csr or (t.dtype.is_floating_point and t.dim() == 2)


def csr_transpose(op: torch.Tensor) -> torch.Tensor:
    """CSR of ``op.T``, built once and kept on the operator (operators are cached per batch;
    a symmetric operator is its own transpose). On CPU a counting sort (no comparison sort)."""
    t = getattr(op, "_gnnsys_transpose", None)
    if t is None:
        if op.device.type == "cpu":
            from gnnsys.sparse_kernels import csr_transpose as kernel

            tc, tk, tv = kernel(op.crow_indices().numpy(), op.col_indices().numpy(), op.values().numpy(),
                                op.size(1))
            t = _csr(torch.from_numpy(tc), torch.from_numpy(tk), torch.from_numpy(tv), op.size(1))
        else:
            t = op.t().to_sparse_csr()
        op._gnnsys_transpose = t
    return t


#: Below this many multiply-adds a product runs in one thread (a pool hand-off costs ~20 us).
SPMM_SPLIT_MIN_WORK = 1 << 18
#: Products with at most this many columns run MKL's sparse kernel (``torch.sparse.mm``) where
#: torch has MKL: in a training step, right after torch's own parallel regions, it ran a
#: random-walk subgraph's 10-column product (a GCN/SAGE output layer, forward and backward) in
#: 0.3-0.4 ms against 0.9-1.5 ms for the numba kernel, and stayed ahead up to 64 columns; at 128
#: the numba kernel is as fast or faster. Both sum each row's entries; MKL's result is
#: deterministic and independent of the thread count.
SPMM_MKL_MAX_COLUMNS = 64
_MKL = torch.backends.mkl.is_available()


def _spmm_splits(op: torch.Tensor, parts: int) -> list[int]:
    """Row boundaries that give each of ``parts`` threads about equal work (entries + rows),
    cached on the operator."""
    cached = getattr(op, "_gnnsys_splits", None)
    if cached is not None and cached[0] == parts:
        return cached[1]
    crow = op.crow_indices().numpy()
    n = crow.shape[0] - 1
    cost = crow + np.arange(n + 1)  # cumulative entries + rows
    bounds = np.searchsorted(cost, cost[-1] * np.arange(1, parts) / parts).tolist()
    splits = [0, *bounds, n]
    op._gnnsys_splits = (parts, splits)
    return splits


def spmm_cpu(op: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``op @ x`` for a CPU CSR operator and a dense matrix (no autograd): by MKL's kernel for at
    most ``SPMM_MKL_MAX_COLUMNS`` columns, else by the numba kernel, rows split over
    ``torch.get_num_threads()`` threads."""
    from gnnsys.sparse_kernels import spmm_rows

    x = x.contiguous()
    n = op.size(0)
    if _MKL and 0 < x.size(1) <= SPMM_MKL_MAX_COLUMNS and n > 0:
        return torch.sparse.mm(op, x)
    out = torch.empty(n, x.size(1), dtype=x.dtype)
    if n == 0 or x.size(1) == 0:
        return out.zero_()
    crow, col, val = op.crow_indices().numpy(), op.col_indices().numpy(), op.values().numpy()
    xn, on = x.detach().numpy(), out.numpy()
    work = (col.shape[0] + n) * x.size(1)
    parts = min(torch.get_num_threads(), max(1, work // SPMM_SPLIT_MIN_WORK))
    if parts <= 1:
        spmm_rows(crow, col, val, xn, on, 0, n)
        return out
    splits = _spmm_splits(op, parts)
    pool = thread_pool(parts - 1, "spmm")
    futs = [pool.submit(spmm_rows, crow, col, val, xn, on, splits[i], splits[i + 1]) for i in range(1, parts)]
    spmm_rows(crow, col, val, xn, on, splits[0], splits[1])
    for f in futs:
        f.result()
    return out


class _CSRMatmul(torch.autograd.Function):
    """``op @ x`` whose backward multiplies by the operator's cached transpose: torch's own
    backward of ``sparse.mm`` re-sorts the transpose on every call. On CPU both products run
    ``spmm_cpu``."""

    @staticmethod
    def forward(ctx, op: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.op = op
        if op.device.type == "cpu":
            return spmm_cpu(op, x)
        return torch.sparse.mm(op, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, transpose_product(ctx.op, grad)


def transpose_product(op: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``op.T @ grad`` for a CSR operator: by its own transpose when it carries one (a
    symmetric operator is its own), as ``A (D^-1 grad)`` for a mean operator of a symmetric
    structure (``csr_operator``), else by the transpose built once (``csr_transpose``)."""
    mean_t = None if hasattr(op, "_gnnsys_transpose") else getattr(op, "_gnnsys_mean_transpose", None)
    if mean_t is not None:
        unit, inv = mean_t
        t, grad = unit, grad * inv.to(grad.dtype).unsqueeze(1)
    else:
        t = csr_transpose(op)
    if t.dtype != grad.dtype:
        t = t.to(grad.dtype)
    if t.device.type == "cpu":
        return spmm_cpu(t, grad)
    return torch.sparse.mm(t, grad)


def propagate(op: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``op @ x`` for a CSR or dense operator (dtype matched to ``x``)."""
    if op.dtype != x.dtype:
        op = op.to(x.dtype)
    if not op.is_sparse_csr:
        return op @ x
    if op.requires_grad or x.dtype not in (torch.float32, torch.float64) or x.dim() != 2:
        return torch.sparse.mm(op, x)
    return _CSRMatmul.apply(op, x)


# A mostly-zero input matrix (bag-of-words features) multiplies a weight as CSR: Cora's
# 2708 x 1440 input (1.8% nonzero) @ a 1440 x 128 weight took 23 ms forward+backward dense and
# 5.7 ms as CSR on one CPU core. Measured on CPU only, so GPU tensors keep the dense matmul.
SPARSE_INPUT_MAX_DENSITY = 0.1
#: A matrix at most this dense counts as mostly zero: input dropout draws only at its nonzeros.
MOSTLY_ZERO_MAX_DENSITY = 0.25


def csr_from_coords(
    rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """CSR matrix from coordinates already in row-major order (as ``nonzero`` returns them)."""
    crow = torch.zeros(shape[0] + 1, dtype=torch.long, device=rows.device)
    torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0, out=crow[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, cols, values, size=shape, check_invariants=False)


def tensor_version(x: torch.Tensor) -> int | None:
    """``x._version``, or ``None`` for an inference-mode tensor (it keeps no version counter,
    so nothing may be cached on it)."""
    return None if x.is_inference() else x._version


def _cached_on(x: torch.Tensor, attr: str, compute: Callable[[], Any]) -> Any:
    """``compute()``, kept on ``x`` under ``attr`` for as long as ``x`` is not modified."""
    version = tensor_version(x)
    cached = getattr(x, attr, None)
    if cached is not None and version is not None and cached[0] == version:
        return cached[1]
    value = compute()
    if version is not None:
        setattr(x, attr, (version, value))
    return value


def _clearly_dense(x: torch.Tensor, rows: int = 256) -> bool:
    """Whether an evenly spaced sample of ``rows`` rows of a large matrix is more than twice as
    dense as a mostly-zero matrix may be: then the full count (a pass over every entry of every
    fresh batch's features) is skipped."""
    if x.dim() != 2 or x.size(0) <= 4 * rows:
        return False
    sample = x[:: x.size(0) // rows]
    return int(torch.count_nonzero(sample)) > 2 * MOSTLY_ZERO_MAX_DENSITY * sample.numel()


def nonzero_coords(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(rows, cols)`` of the nonzeros of a 2-D matrix that is mostly zero (at most
    ``MOSTLY_ZERO_MAX_DENSITY`` nonzero), else ``None``; cached on ``x`` like ``sparse_input``."""

    def compute() -> tuple[torch.Tensor, torch.Tensor] | None:
        if not x.numel() or _clearly_dense(x):
            return None
        if int(torch.count_nonzero(x)) > MOSTLY_ZERO_MAX_DENSITY * x.numel():
            return None  # one cheap counting pass spares ``nonzero`` on a dense matrix
        return x.nonzero(as_tuple=True)

    return _cached_on(x, "_gnnsys_nonzero", compute)


def attach_sparse_input(x: torch.Tensor, csr: torch.Tensor | None) -> None:
    """Record ``csr`` (or ``None``: not sparse) as ``x``'s CSR copy for its current version."""
    version = tensor_version(x)
    if version is not None:
        x._gnnsys_csr = (version, csr)


def sparse_input(x: torch.Tensor) -> torch.Tensor | None:
    """A CSR copy of ``x`` when it is a mostly-zero 2-D CPU float matrix that needs no
    gradient (at most ``SPARSE_INPUT_MAX_DENSITY`` nonzero), else ``None``. The answer is
    cached on the tensor, keyed by its version, so a fixed input pays for it once."""
    if x.requires_grad or x.dim() != 2 or x.device.type != "cpu" or not x.dtype.is_floating_point \
            or x.layout != torch.strided:
        return None

    def compute() -> torch.Tensor | None:
        nz = nonzero_coords(x)
        if nz is None or nz[0].numel() > SPARSE_INPUT_MAX_DENSITY * x.numel():
            return None
        return csr_from_coords(nz[0], nz[1], x[nz], tuple(x.shape))

    return _cached_on(x, "_gnnsys_csr", compute)


def linear(x: torch.Tensor, lin: torch.nn.Module, bias: bool = True, add: torch.Tensor | None = None) -> torch.Tensor:
    """``lin(x)`` for a ``Linear`` (``weight``, optional ``bias``; ``bias=False`` leaves it
    out), as a CSR matmul when ``x`` is a CSR matrix or a mostly-zero input
    (``sparse_input``); the same values up to float rounding. ``add``: return ``add + lin(x)``,
    accumulated by the matmul itself where it can (no separate pass over the output)."""
    b = getattr(lin, "bias", None) if bias else None
    csr = x if x.is_sparse_csr else sparse_input(x)
    if csr is None or csr.dtype != lin.weight.dtype:
        if add is not None and b is None and not x.is_sparse_csr and add.shape == (x.size(0), lin.weight.size(0)):
            return torch.addmm(add, x, lin.weight.t())
        out = torch.nn.functional.linear(x, lin.weight, b)
        return out if add is None else add + out
    wt = lin.weight.t()
    out = torch.sparse.mm(csr, wt) if b is None else torch.addmm(b, csr, wt)
    return out if add is None else add + out
