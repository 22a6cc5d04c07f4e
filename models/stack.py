"""``GNNStack``: encoder -> message-passing layers -> task head, with per-layer access."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gnnsys.batch import MiniBatch
from gnnsys.sparse import NORMS, SPARSE_INPUT_MAX_DENSITY, attach_sparse_input, csr_from_coords, nonzero_coords


def input_dropout(x: torch.Tensor, p: float, training: bool, sparse_ok: bool = False) -> torch.Tensor:
    """``F.dropout`` for a mostly-zero input matrix (bag-of-words features): the same
    distribution, with the mask drawn only at the nonzeros, since a dropped zero is still
    zero. On CiteSeer (12.3M entries, 0.9% nonzero) a full mask was most of a training
    step. Tensors that need a gradient, or that are not mostly zeros, take ``F.dropout``. A
    result that is still mostly zero (CPU) carries its CSR copy for the layer's ``linear``,
    or with ``sparse_ok`` (a layer that declares ``accepts_sparse_input``) is returned as
    that CSR matrix alone, never written out dense."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    if x.requires_grad or x.dim() != 2:
        return F.dropout(x, p, training)
    nz = nonzero_coords(x)
    if nz is None:
        return F.dropout(x, p, training)
    keep = torch.rand(nz[0].numel(), device=x.device) >= p
    rows, cols = nz[0][keep], nz[1][keep]
    vals = x[rows, cols] / (1.0 - p)
    csr = None
    if x.device.type == "cpu" and rows.numel() <= SPARSE_INPUT_MAX_DENSITY * x.numel():
        # the coordinates are at hand: give the first layer's ``linear`` its CSR input for free
        csr = csr_from_coords(rows, cols, vals, tuple(x.shape))
        if sparse_ok:
            return csr
    out = torch.zeros_like(x)
    out[rows, cols] = vals
    if csr is not None:
        attach_sparse_input(out, csr)
    return out


def accepts_sparse_input(layer: nn.Module) -> bool:
    """Whether ``layer`` takes a CSR input matrix (it declares ``accepts_sparse_input``)."""
    return bool(getattr(layer, "accepts_sparse_input", False))


class GNNStack(nn.Module):
    """A stack of GNN layers, the one model structure every trainer works on.

    ``forward(batch)`` = ``head(forward_layer(L-1, ... forward_layer(0, encoder(batch))))``
    (a head with ``all_layers = True`` receives the list ``[h^(0), ..., h^(L)]`` instead).
    ``forward_layer(i, h, batch)`` applies dropout to ``h``, layer ``i``, and (except after the
    last layer when ``activate_last`` is false) the layer's norm and the activation: the output
    is exactly what layer ``i+1`` receives. With ``residual`` a layer that keeps the width adds
    its input to that output (``h + f(h)``; deep stacks). Per-layer access is what lets a forward-only
    trainer train layer by layer, a pipeline cut the stack into stages, and Virgo set each
    layer's variance.
    """

    def __init__(
        self,
        layers: list[nn.Module],
        head: nn.Module,
        encoder: nn.Module,
        task: str = "node",
        act: nn.Module | None = None,
        norms: list[nn.Module] | None = None,
        dropout: float = 0.0,
        activate_last: bool = False,
        input_dropout: float | None = None,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleList(norms if norms is not None else [nn.Identity() for _ in layers])
        self.act = act if act is not None else nn.ReLU()
        self.head = head
        self.encoder = encoder
        self.task = task
        self.dropout = dropout
        self.input_dropout = dropout if input_dropout is None else input_dropout
        self.activate_last = activate_last
        self.residual = residual

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    @staticmethod
    def apply_layer(layer: nn.Module, h: torch.Tensor, batch: MiniBatch) -> torch.Tensor:
        """``layer(h, ...)`` with the graph inputs the layer takes: ``edge_index, edge_weight``
        and ``edge_attr=`` for layers that set ``uses_edge_attr`` (their messages need the
        edges themselves); the batch's cached normalized operator for layers that declare
        ``propagation``; otherwise ``edge_index, edge_weight``."""
        if getattr(layer, "uses_edge_attr", False):
            return layer(h, batch.edge_index, batch.edge_weight, edge_attr=batch.edge_attr)
        prop = getattr(layer, "propagation", None)
        if prop in NORMS:
            return layer(h, batch.adj(prop), None)
        return layer(h, batch.edge_index, batch.edge_weight)

    def encode(self, batch: MiniBatch) -> torch.Tensor:
        """Input node states ``h^(0)``."""
        return self.encoder(batch)

    def forward_layer(self, i: int, h: torch.Tensor, batch: MiniBatch) -> torch.Tensor:
        """Output of layer ``i`` after its norm and activation (what layer ``i+1`` receives)."""
        layer = self.layers[i]
        h_in = h
        if i == 0:
            h = input_dropout(h, self.input_dropout, self.training, accepts_sparse_input(layer))
        else:
            h = F.dropout(h, self.dropout, self.training)
        h = self.apply_layer(layer, h, batch)
        if i < self.num_layers - 1 or self.activate_last:
            h = self.act(self.norms[i](h))
        if self.residual and not h_in.is_sparse_csr and h_in.shape == h.shape:
            h = h + h_in
        return h

    def embed(self, batch: MiniBatch) -> torch.Tensor:
        """Node states after the last layer (before the head)."""
        h = self.encode(batch)
        for i in range(self.num_layers):
            h = self.forward_layer(i, h, batch)
        return h

    def forward(self, batch: MiniBatch) -> torch.Tensor:
        if not getattr(self.head, "all_layers", False):
            return self.head(self.embed(batch), batch)
        hs = [self.encode(batch)]  # heads that read every layer (GIN-style graph readout)
        for i in range(self.num_layers):
            hs.append(self.forward_layer(i, hs[-1], batch))
        return self.head(hs, batch)
