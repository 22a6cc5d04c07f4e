"""GraphSAGE with mean aggregation (Hamilton et al., 2017)."""

from __future__ import annotations

import torch
from gnnsys.models.registry import register_layer
from torch import nn
from torch_geometric.nn import SAGEConv

from gnnsys.sparse import is_operator, linear, propagate, propagation_matrix, sparse_input


@register_layer("sage")
class SAGELayer(nn.Module):
    r"""GraphSAGE layer on PyG's ``SAGEConv``:

    .. math::
        \mathbf{x}'_v = \mathbf{W}_1 \mathbf{x}_v + \mathbf{W}_2
        \frac{\sum_{u \to v} w_{uv} \mathbf{x}_u}{\sum_{u \to v} w_{uv}}

    (weighted mean over in-neighbours, ``w = 1`` by default). Propagation operator: ``"mean"``.
    The mean is linear, so a layer that narrows (``in_dim > out_dim``) applies ``W_2`` before
    aggregating (``P (X W_2) + b``, the same values up to rounding, the propagation on the
    narrower side) and then takes ``x`` as a CSR matrix as well. Such a layer multiplies ``x``
    by both weights at once (``X [W_2 | W_1]``, one product twice as wide: an output layer's
    few columns use the matmul poorly) and splits the result.
    """

    propagation = "mean"

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, root_weight: bool = True) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.conv = SAGEConv(in_dim, out_dim, aggr="mean", bias=bias, root_weight=root_weight)
        self.transform_first = in_dim > out_dim
        self.accepts_sparse_input = self.transform_first  # then x is only ever multiplied by a weight

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        op = edge_index if is_operator(edge_index) else propagation_matrix(edge_index, x.size(0), edge_weight, "mean")
        lin_l = self.conv.lin_l
        if self.transform_first and self.conv.root_weight and x.layout == torch.strided \
                and sparse_input(x) is None:
            o = self.out_dim
            z = x @ torch.cat([lin_l.weight, self.conv.lin_r.weight]).t()
            out = propagate(op, z[:, :o])
            out = out + z[:, o:] if lin_l.bias is None else torch.add(out, z[:, o:]).add_(lin_l.bias)
            return out
        if self.transform_first:
            out = propagate(op, linear(x, lin_l, bias=False))
            out = out if lin_l.bias is None else out + lin_l.bias
        else:
            out = lin_l(propagate(op, x))
        return linear(x, self.conv.lin_r, add=out) if self.conv.root_weight else out
