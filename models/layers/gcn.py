"""Graph convolution (Kipf & Welling, 2017)."""

from __future__ import annotations

import torch
from gnnsys.models.registry import register_layer
from torch import nn
from torch_geometric.nn import GCNConv

from gnnsys.sparse import is_operator, linear, propagate, propagation_matrix


@register_layer("gcn")
class GCNLayer(nn.Module):
    r"""GCN layer on PyG's ``GCNConv``:

    .. math::
        \mathbf{X}' = \hat{D}^{-1/2} (\mathbf{A}_w + \mathbf{I}) \hat{D}^{-1/2} \mathbf{X} \mathbf{W} + b,
        \qquad \hat{D}_{vv} = 1 + \textstyle\sum_{u \to v} w_{uv}

    ``edge_weight`` scales each message ``w_uv`` (GraphSAINT's aggregator normalization).
    The parameters are those of PyG's ``GCNConv``; propagation is one product with the
    normalized operator (``gnnsys.sparse``), which ``GNNStack`` builds once per batch.
    Propagation operator (used by Virgo): ``"gcn"``. ``x`` may be a CSR matrix (it is only
    multiplied by ``W``), which the stack passes for a mostly-zero input after dropout.

    The product is associative, so the layer picks the cheaper order: ``P (X W)`` propagates
    ``out_dim`` columns forward and again backward (the gradient of ``X W``), while ``(P X) W``
    propagates ``in_dim`` columns forward only when ``X`` needs no gradient (a first layer on
    fixed features): then its backward is one dense product. A dense input that needs no
    gradient is propagated first when ``in_dim <= 2 * out_dim`` (training) or ``in_dim <=
    out_dim`` (inference), as DGL's ``GraphConv`` does by width.
    """

    propagation = "gcn"
    accepts_sparse_input = True

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.conv = GCNConv(in_dim, out_dim, normalize=False, bias=bias)

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        op = edge_index if is_operator(edge_index) else propagation_matrix(edge_index, x.size(0), edge_weight, "gcn")
        bias = self.conv.bias
        if self._propagate_first(x):
            px = propagate(op, x)
            if bias is not None:  # the bias added by the matmul itself
                return torch.addmm(bias, px, self.conv.lin.weight.t())
            return self.conv.lin(px)
        out = propagate(op, linear(x, self.conv.lin))
        return out if bias is None else out + bias

    def _propagate_first(self, x: torch.Tensor) -> bool:
        if x.is_sparse_csr or x.requires_grad or x.layout != torch.strided:
            return False
        grad = torch.is_grad_enabled() and self.conv.lin.weight.requires_grad
        return x.size(1) <= (2 if grad else 1) * self.out_dim
