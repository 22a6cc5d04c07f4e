"""Sparse propagation matrices (``torch.sparse_csr``, rows = targets, PyG's ``adj_t``).

Message passing with a CSR adjacency is several times faster on CPU than scatter over
``edge_index``, so full-graph and subgraph batches build these once and cache them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

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


def is_operator(t: torch.Tensor) -> bool:
    """True for a propagation operator (CSR or dense float matrix), False for an ``edge_index``."""
    return t.is_sparse_csr or (t.dtype.is_floating_point and t.dim() == 2)


def _csr_transpose(op: torch.Tensor) -> torch.Tensor:
    """CSR of ``op.T``, built once and kept on the operator (operators are cached per batch)."""
    t = getattr(op, "_gnnsys_transpose", None)
    if t is None:
        t = op.t().to_sparse_csr()
        op._gnnsys_transpose = t
    return t


class _CSRMatmul(torch.autograd.Function):
    """``op @ x`` whose backward reuses the cached transpose: torch's own backward of
    ``sparse.mm`` re-sorts the transpose on every call, most of a small GCN step."""

    @staticmethod
    def forward(ctx, op: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.op = op
        return torch.sparse.mm(op, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, torch.sparse.mm(_csr_transpose(ctx.op), grad)


def propagate(op: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``op @ x`` for a CSR or dense operator (dtype matched to ``x``)."""
    if op.dtype != x.dtype:
        op = op.to(x.dtype)
    if not op.is_sparse_csr:
        return op @ x
    if op.requires_grad:
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


def nonzero_coords(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(rows, cols)`` of the nonzeros of a 2-D matrix that is mostly zero (at most
    ``MOSTLY_ZERO_MAX_DENSITY`` nonzero), else ``None``; cached on ``x`` like ``sparse_input``."""

    def compute() -> tuple[torch.Tensor, torch.Tensor] | None:
        if not x.numel() or int(torch.count_nonzero(x)) > MOSTLY_ZERO_MAX_DENSITY * x.numel():
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


def linear(x: torch.Tensor, lin: torch.nn.Module, bias: bool = True) -> torch.Tensor:
    """``lin(x)`` for a ``Linear`` (``weight``, optional ``bias``; ``bias=False`` leaves it
    out), as a CSR matmul when ``x`` is a CSR matrix or a mostly-zero input
    (``sparse_input``); the same values up to float rounding."""
    b = getattr(lin, "bias", None) if bias else None
    csr = x if x.is_sparse_csr else sparse_input(x)
    if csr is None or csr.dtype != lin.weight.dtype:
        return torch.nn.functional.linear(x, lin.weight, b)
    wt = lin.weight.t()
    return torch.sparse.mm(csr, wt) if b is None else torch.addmm(b, csr, wt)
