"""Task heads: what turns the last layer's node states into predictions."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from gnnsys.batch import MiniBatch
from gnnsys.errors import ConfigError


class NodeHead(nn.Module):
    """Node classification: identity (the last layer is the classifier) or a linear map."""

    def __init__(self, in_dim: int | None = None, out_dim: int | None = None) -> None:
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim) if in_dim is not None else None

    def forward(self, h: torch.Tensor, batch: MiniBatch) -> torch.Tensor:
        return h if self.lin is None else self.lin(h)


class LinkHead(nn.Module):
    """Link prediction: returns node embeddings; ``score(h, pairs)`` gives one logit per pair.

    ``kind="dot"``: ``<h_u, h_v>``; ``kind="mlp"``: an MLP of ``layers`` Linears on
    ``h_u ⊙ h_v`` with ReLU and dropout between them (OGB's ``LinkPredictor``; its ogbl-ddi
    baseline uses 2 layers, as here)."""

    def __init__(self, dim: int, kind: str = "mlp", hidden: int | None = None, layers: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if kind not in ("dot", "mlp"):
            raise ConfigError(f"link head must be 'dot' or 'mlp', not {kind!r}")
        self.kind = kind
        self.dropout = dropout
        if kind == "mlp":
            hidden = hidden or dim
            dims = [dim] + [hidden] * (layers - 1) + [1]
            mods: list[nn.Module] = []
            for i in range(len(dims) - 1):
                mods.append(nn.Linear(dims[i], dims[i + 1]))
                if i < len(dims) - 2:
                    mods += [nn.ReLU(), nn.Dropout(dropout)]
            self.mlp = nn.Sequential(*mods)

    def forward(self, h: torch.Tensor, batch: MiniBatch) -> torch.Tensor:
        return h

    def score(self, h: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Logits of the pairs ``[2, k]`` (local ids into ``h``)."""
        hu, hv = h[pairs[0]], h[pairs[1]]
        if self.kind == "dot":
            return (hu * hv).sum(-1)
        return self.mlp(hu * hv).squeeze(-1)


class GraphHead(nn.Module):
    """Graph classification/regression with the GIN paper's readout over all layers:
    ``score(G) = Σ_l Linear_l(dropout(READOUT({h_v^(l)})))`` for ``l = 0..L`` (input included),
    so shallow and deep structure both reach the prediction. ``dims[l]`` is the width of ``h^(l)``."""

    POOLS = {"sum": global_add_pool, "mean": global_mean_pool, "max": global_max_pool}
    all_layers = True  # GNNStack passes the list of every layer's node states

    def __init__(self, dims: list[int], out_dim: int, readout: str = "sum", dropout: float = 0.5) -> None:
        super().__init__()
        if readout not in self.POOLS:
            raise ConfigError(f"readout must be one of {sorted(self.POOLS)}, not {readout!r}")
        self.readout = readout
        self.dropout = dropout
        self.lins = nn.ModuleList(nn.Linear(d, out_dim) for d in dims)

    def forward(self, hs: list[torch.Tensor], batch: MiniBatch) -> torch.Tensor:
        if batch.graph_index is None:
            raise ConfigError("a graph head needs batch.graph_index (a batch of graphs)")
        pool = self.POOLS[self.readout]
        size = batch.num_graphs or None
        out = 0
        for lin, h in zip(self.lins, hs):
            out = out + lin(nn.functional.dropout(pool(h, batch.graph_index, size=size), self.dropout,
                                                  self.training))
        return out
