"""Graph attention layer (Veličković et al., 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from gnnsys.models.registry import register_layer
from torch import nn
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import glorot, zeros
from torch_geometric.utils import softmax

from gnnsys.sparse import linear


@register_layer("gat")
class GATLayer(nn.Module):
    r"""GAT layer (PyG's ``GATConv`` math, built from ``torch_geometric.nn`` parts):

    .. math::
        \alpha_{uv} = \frac{w_{uv}\exp(e_{uv})}{\sum_{u' \to v} w_{u'v}\exp(e_{u'v})},\quad
        e_{uv} = \mathrm{LeakyReLU}\big(\mathbf{a}_s^\top \mathbf{W}\mathbf{x}_u
                 + \mathbf{a}_d^\top \mathbf{W}\mathbf{x}_v\big),\quad
        \mathbf{x}'_v = \Big\Vert_{h} \sum_{u \to v \cup \{v\}} \alpha^h_{uv} \mathbf{W}^h \mathbf{x}_u + b

    Self loops (weight 1) are added. ``edge_weight`` ``w`` rescales attention (``w = 1``:
    plain GAT); it is how GraphSAINT's aggregator normalization enters an attention layer.
    ``out_dim`` is the concatenated width (``heads`` must divide it). Propagation operator
    at init (attention scores all equal): ``"mean"`` over in-neighbours and the node itself.
    ``x`` may be a CSR matrix (it is only multiplied by ``W``).
    """

    accepts_sparse_input = True
    propagation = None  # attention needs per-edge scores, so the stack passes edge_index

    def __init__(
        self, in_dim: int, out_dim: int, heads: int = 1, negative_slope: float = 0.2,
        attn_dropout: float = 0.0, bias: bool = True,
    ) -> None:
        super().__init__()
        if out_dim % heads:
            raise ValueError(f"GATLayer: heads={heads} must divide out_dim={out_dim}")
        self.in_dim, self.out_dim, self.heads = in_dim, out_dim, heads
        self.head_dim = out_dim // heads
        self.negative_slope, self.attn_dropout = negative_slope, attn_dropout
        self.lin = Linear(in_dim, out_dim, bias=False, weight_initializer="glorot")
        self.att_src = nn.Parameter(torch.empty(1, heads, self.head_dim))
        self.att_dst = nn.Parameter(torch.empty(1, heads, self.head_dim))
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        glorot(self.att_src)
        glorot(self.att_dst)
        if self.bias is not None:
            zeros(self.bias)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        n = x.size(0)
        if edge_index.is_sparse_csr:
            raise ValueError("GATLayer takes edge_index (COO), not a sparse operator")
        loop = torch.arange(n, device=x.device)
        keep = edge_index[0] != edge_index[1]
        src = torch.cat([edge_index[0][keep], loop])
        dst = torch.cat([edge_index[1][keep], loop])
        h = linear(x, self.lin).view(n, self.heads, self.head_dim)
        a_s = (h * self.att_src).sum(-1)
        a_d = (h * self.att_dst).sum(-1)
        e = F.leaky_relu(a_s[src] + a_d[dst], self.negative_slope)
        if edge_weight is not None:
            w = torch.cat([edge_weight[keep].to(e.dtype), torch.ones(n, device=x.device, dtype=e.dtype)])
            e = e + torch.log(w.clamp_min(1e-30)).unsqueeze(-1)
        alpha = softmax(e, dst, num_nodes=n)
        alpha = F.dropout(alpha, self.attn_dropout, self.training)
        out = torch.zeros_like(h).index_add_(0, dst, h[src] * alpha.unsqueeze(-1))
        out = out.reshape(n, self.out_dim)
        return out if self.bias is None else out + self.bias
