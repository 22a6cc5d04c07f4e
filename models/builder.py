"""``build_model``: a ``GNNStack`` for a layer type, sizes and task."""

from __future__ import annotations

from typing import Any

from gnnsys.models.encoders import AtomFeatureEncoder, FeatureEncoder, NodeEmbeddingEncoder
from gnnsys.models.heads import GraphHead, LinkHead, NodeHead
from gnnsys.models.registry import get_layer
from gnnsys.models.stack import GNNStack
from torch import nn

from gnnsys.errors import ConfigError


def build_model(
    layer: str | type[nn.Module],
    in_dim: int,
    hidden: int,
    out_dim: int,
    num_layers: int,
    dropout: float = 0.5,
    task: str = "node",
    *,
    encoder: str = "features",
    num_nodes: int | None = None,
    norm: str | None = None,
    link_head: str = "mlp",
    readout: str = "sum",
    node_head: str = "conv",
    layer_kwargs: dict[str, Any] | None = None,
    residual: bool = False,
) -> GNNStack:
    """Build a ``GNNStack``.

    - ``task="node"``: with ``node_head="conv"`` the last layer outputs ``out_dim`` class
      scores (the classic GCN); ``node_head="linear"`` keeps every layer ``hidden`` wide and
      adds a linear classifier.
    - ``task="link"``: every layer ``hidden`` wide; a ``LinkHead`` (``link_head`` = "dot" or "mlp")
      scores pairs.
    - ``task="graph"``: every layer ``hidden`` wide and activated; ``readout`` pooling of every
      layer's states (input included), each mapped linearly to ``out_dim`` and summed (GIN).
    - ``encoder``: ``"features"`` (dense ``x`` into the first layer, ``in_dim`` wide),
      ``"embedding"`` (a learned ``hidden``-wide vector per node, needs ``num_nodes``) or
      ``"atom"`` (OGB's AtomEncoder, ``hidden`` wide).
    - ``layer_kwargs``: passed to every layer; with ``node_head="conv"`` the class-score layer
      gets ``heads=1`` (as GAT's output layer on Cora) when ``heads`` is given.
    - ``norm``: ``None`` or ``"batch"`` (BatchNorm after every hidden layer).
    - ``residual``: every layer that keeps the width adds its input to its output.
    - ``dropout``: before every layer for node and link tasks (not on a learned embedding
      table) and between the layers of the link MLP; for graph tasks only in the head.
    """
    if num_layers < 1:
        raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
    if hidden < 1 or out_dim < 1:
        raise ConfigError(f"hidden and out_dim must be positive (got hidden={hidden}, out_dim={out_dim})")
    if task not in ("node", "link", "graph"):
        raise ConfigError(f"task must be 'node', 'link' or 'graph', not {task!r}")
    cls = get_layer(layer)
    kw = dict(layer_kwargs or {})

    if encoder == "features":
        enc: nn.Module = FeatureEncoder()
        first = in_dim
    elif encoder == "embedding":
        if num_nodes is None:
            raise ConfigError("encoder='embedding' needs num_nodes")
        enc, first = NodeEmbeddingEncoder(num_nodes, hidden), hidden
    elif encoder == "atom":
        enc, first = AtomFeatureEncoder(hidden), hidden
    else:
        raise ConfigError(f"unknown encoder {encoder!r}: use 'features', 'embedding' or 'atom'")

    last_is_classifier = task == "node" and node_head == "conv"
    dims = [first] + [hidden] * (num_layers - 1) + [out_dim if last_is_classifier else hidden]
    last_kw = dict(kw)
    if last_is_classifier and "heads" in kw:
        last_kw["heads"] = 1  # the classifier layer of a multi-head attention stack has one head (as in GAT)
    layers = [cls(dims[i], dims[i + 1], **(last_kw if i == num_layers - 1 else kw)) for i in range(num_layers)]
    if norm not in (None, "none", "batch"):
        raise ConfigError(f"norm must be None or 'batch', not {norm!r}")
    norms = [nn.BatchNorm1d(dims[i + 1]) if norm == "batch" else nn.Identity() for i in range(num_layers)]

    if task == "node":
        head: nn.Module = NodeHead() if last_is_classifier else NodeHead(hidden, out_dim)
        activate_last = not last_is_classifier
    elif task == "link":
        head, activate_last = LinkHead(hidden, kind=link_head, dropout=dropout), False
    else:
        head, activate_last = GraphHead(dims, out_dim, readout=readout, dropout=dropout), True
    # Graph tasks follow GIN: dropout only in the readout head, none between layers (dropping
    # one-hot atom types before message passing costs several points on MUTAG).
    layer_dropout = 0.0 if task == "graph" else dropout
    # A learned embedding table is not an observed signal to regularize (OGB's featureless
    # link baselines apply dropout only between layers).
    input_dropout = 0.0 if encoder == "embedding" else None
    return GNNStack(layers, head, enc, task=task, norms=norms, dropout=layer_dropout, activate_last=activate_last,
                    input_dropout=input_dropout, residual=residual)
