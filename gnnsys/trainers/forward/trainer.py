"""``ForwardTrainer``: runs a ForwardGNN variant on a node or link dataset."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch

from gnnsys.batch import MiniBatch
from gnnsys.checkpoint import TrainerCheckpoint
from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.errors import ConfigError
from gnnsys.trainers.forward.common import TOPDOWN_VARIANTS, ForwardSettings, check_node_labels


class ForwardTrainer:
    """Forward-only, layer-local training (ForwardGNN, Park et al., ICLR 2024).

    ``run(dataset)`` trains ``config.forward_variant`` on ``dataset`` (whose ``split`` is the
    one to use) and returns a results dict shaped like ``History.to_dict()`` plus
    ``variant`` and ``per_layer``. ``config.sampler != "full"`` trains on GraphSAINT subgraphs
    (``gnnsys.samplers.saint.make_saint_loader``); evaluation is always full-graph.

    Hyperparameters: ``lr``/``weight_decay`` left ``None`` take the paper's Adam 1e-3 / 5e-4
    (through ``gnnsys.api`` the config is already resolved, so the dataset defaults apply);
    ``epochs`` caps each layer (greedy variants) or counts time steps (top-down variants).
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = torch.device(config.device)

    def settings(self, dataset: Dataset) -> ForwardSettings:
        return ForwardSettings.from_config(self.config, dataset.task)

    def loader(self, dataset: Dataset, statistics: dict[str, Any] | None = None) -> Iterable[MiniBatch] | None:
        """GraphSAINT subgraph batches when ``config.sampler`` asks for them, else ``None``
        (the trainer's own full-graph batch); ``statistics``: the normalization to use instead
        of pre-sampling (a checkpoint's)."""
        if self.config.sampler == "full":
            return None
        try:
            from gnnsys.samplers.saint import make_saint_loader
        except ImportError as e:  # pragma: no cover - depends on the GraphSAINT package landing
            raise ConfigError(f"--sampler {self.config.sampler} needs gnnsys.samplers.saint: {e}") from e
        from gnnsys.loading import LoadingPipeline

        # no operators here: the forward trainers add virtual nodes to each batch first
        sampler = make_saint_loader(dataset, self.config, device=self.config.device, statistics=statistics)
        return LoadingPipeline(sampler, dataset, device=self.device, prefetch=self.config.prefetch)

    def build(self, dataset: Dataset) -> Any:
        """The variant's trainer object (``fit(loader, quiet, checkpoint)`` -> ``History``;
        ``export()`` / ``load_layers(states)`` for saved models)."""
        s = self.settings(dataset)
        if dataset.task == "node":
            labels = check_node_labels(dataset, dataset.split)
            if s.variant in TOPDOWN_VARIANTS:
                from gnnsys.trainers.forward.topdown import TOPDOWN_NODE_VARIANTS

                return TOPDOWN_NODE_VARIANTS[s.variant](s, dataset, dataset.split, labels, self.device)
            from gnnsys.trainers.forward.node import GREEDY_NODE_VARIANTS

            return GREEDY_NODE_VARIANTS[s.variant](s, dataset, dataset.split, labels, self.device)
        from gnnsys.trainers.forward.link import LinkForward

        return LinkForward(s, dataset, self.device, seed=self.config.seed)

    def run(self, dataset: Dataset, checkpoint: TrainerCheckpoint | None = None,
            statistics: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train and return ``{"metric","val","test","epochs","seconds","best_epoch","history",
        "variant","per_layer"}``; the trained variant stays in ``self.impl``. ``checkpoint``:
        resume from it and write to it (``gnnsys.checkpoint``)."""
        t0 = time.perf_counter()
        impl = self.build(dataset)
        self.impl = impl
        hist = impl.fit(self.loader(dataset, statistics), quiet=self.config.quiet, checkpoint=checkpoint)
        hist.metric = dataset.metric
        hist.seconds = time.perf_counter() - t0
        out = hist.to_dict()
        out["variant"] = impl.s.variant
        out["per_layer"] = getattr(impl, "layer_stats", [])
        return out
