"""GIN with edge features (Hu et al., 2020; OGB's GIN for molecules)."""

from __future__ import annotations

import torch
from gnnsys.models.layers.gin import GINLayer
from gnnsys.models.registry import register_layer
from torch import nn
from torch_geometric.nn import GINEConv

from gnnsys.errors import ConfigError


@register_layer("gine")
class GINELayer(GINLayer):
    r"""GIN layer whose messages carry the edge's features (PyG's ``GINEConv``, OGB's GIN):

    .. math::
        \mathbf{x}'_v = \mathrm{MLP}\Big((1 + \epsilon)\,\mathbf{x}_v
            + \sum_{u \to v} w_{uv}\,\mathrm{ReLU}(\mathbf{x}_u + \mathbf{e}_{uv})\Big)

    ``e_uv`` embeds the edge's features to the layer's input width: with ``edge_dim=None``
    OGB's ``BondEncoder`` (the 3 categorical bond features of ``ogbg-mol*``), otherwise a
    ``Linear(edge_dim, in_dim)`` of float edge features. Every layer has its own edge
    embedding, as in OGB's baseline. ``w_uv`` is the optional ``edge_weight`` (1 by default).
    Virgo treats the layer as GIN (operator ``"sum"`` plus the ``(1+eps)`` self term; the
    edge embedding is not part of the statistic).
    """

    uses_edge_attr = True

    def __init__(self, in_dim: int, out_dim: int, train_eps: bool = True, batch_norm: bool = True,
                 edge_dim: int | None = None) -> None:
        super().__init__(in_dim, out_dim, train_eps=train_eps, batch_norm=batch_norm)
        self.conv = GINEConv(self.conv.nn, train_eps=train_eps)
        if edge_dim is None:
            from ogb.graphproppred.mol_encoder import BondEncoder

            self.edge_encoder: nn.Module = BondEncoder(in_dim)
        else:
            self.edge_encoder = nn.Linear(edge_dim, in_dim)
        self.edge_dim = edge_dim

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        if isinstance(self.edge_encoder, nn.Linear):
            self.edge_encoder.reset_parameters()
        else:  # BondEncoder's own initialization
            for emb in self.edge_encoder.bond_embedding_list:
                nn.init.xavier_uniform_(emb.weight)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None,
        edge_attr: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if edge_attr is None:
            raise ConfigError("the gine layer needs edge features (edge_attr), and this batch has none; "
                              "use gin for a dataset without edge features")
        if edge_attr.size(0) != edge_index.size(1):
            raise ConfigError(f"gine: {edge_attr.size(0)} edge feature rows for {edge_index.size(1)} edges")
        if self.edge_dim is None:
            if edge_attr.dtype.is_floating_point:
                raise ConfigError("gine with the OGB bond encoder needs categorical (integer) edge features; "
                                  "pass layer_kwargs={'edge_dim': d} for float features")
            e = self.edge_encoder(edge_attr.long().view(edge_attr.size(0), -1))
        else:
            e = self.edge_encoder(edge_attr.float().view(edge_attr.size(0), -1))
        src, dst = edge_index[0], edge_index[1]
        msg = torch.relu(x[src] + e)
        if edge_weight is not None:
            msg = msg * edge_weight.view(-1, 1).to(msg.dtype)
        agg = torch.zeros_like(x).index_add_(0, dst, msg)
        return self.conv.nn((1 + self.conv.eps) * x + agg)
