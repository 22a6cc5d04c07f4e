"""``build_feature_store``: the feature store a training run asks for (``--features``)."""

from __future__ import annotations

from typing import Any

import torch
from gnnsys.storage.feature_store import FeatureStore, InMemoryFeatureStore
from gnnsys.storage.policies import CACHE_POLICIES
from gnnsys.storage.scores import check_graph_rows
from gnnsys.storage.tiered import TieredFeatureStore

from gnnsys.config import FEATURE_KINDS
from gnnsys.errors import ConfigError


def build_feature_store(features: Any, *, kind: str = "memory", cache_fraction: float | int = 0.1,
                        cache_policy: str | None = None, cache_device: Any = "cpu", graph: Any = None,
                        train_nodes: Any = None, saint_counts: Any = None, **policy_options: Any) -> FeatureStore:
    """The store for ``features`` (a tensor or a ``FeatureStore``).

    ``kind="memory"``: the features as they are (an ``InMemoryFeatureStore`` for a tensor).
    ``kind="tiered"``: a ``TieredFeatureStore`` with ``cache_fraction`` of the rows (or that many
    rows, an int) on ``cache_device`` under ``cache_policy`` (one of ``CACHE_POLICIES``; default
    ``s3fifo``), built
    from ``graph`` (degree, PageRank), ``train_nodes`` and ``saint_counts`` (GraphSAINT's ``C_v``,
    ``sampler.stats.node_count``; needed by ``static-saint``, used as the warm-start score by the
    others when given). ``policy_options``: ``window`` (planned), ``static_fraction``
    (hybrid), ... ``kind="disk"``: ``features`` is a feature file's path, read by an
    ``OutOfCoreStore`` (``policy_options``: ``memory_budget``, ``layout``, ``sampler``,
    ``cache_dir``, ...; a static ``cache_policy``). In every kind the feature rows must match
    ``graph``'s nodes."""
    if kind not in FEATURE_KINDS:
        raise ConfigError(f"unknown feature store kind {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
    if kind == "memory":
        store = features if isinstance(features, FeatureStore) else InMemoryFeatureStore(torch.as_tensor(features))
        if graph is not None:
            check_graph_rows(graph, store.num_nodes)
        return store
    if kind == "disk":  # a feature file (a path) under a memory budget: OutOfCoreStore
        from gnnsys.storage.out_of_core import OutOfCoreStore

        if isinstance(features, (torch.Tensor, FeatureStore)):
            raise ConfigError("kind='disk' reads a feature file: pass its path (write one with write_feature_file)")
        if "memory_budget" not in policy_options:
            raise ConfigError("kind='disk' needs memory_budget= (e.g. '2GB')")
        if cache_policy is None:
            cache_policy = "static-saint" if saint_counts is not None else "static-degree"
        return OutOfCoreStore(features, graph=graph, train_nodes=train_nodes, counts=saint_counts,
                              policy=cache_policy, **policy_options)
    cache_policy = "s3fifo" if cache_policy is None else cache_policy
    if cache_policy not in CACHE_POLICIES:
        raise ConfigError(f"unknown cache policy {cache_policy!r} for training; choose one of "
                          f"{', '.join(CACHE_POLICIES)} (belady and best-static need the whole trace: bench only)")
    return TieredFeatureStore(features, cache_fraction, cache_policy, cache_device, graph=graph,
                              train_nodes=train_nodes, counts=saint_counts, **policy_options)
