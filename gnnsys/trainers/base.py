"""What every trainer returns (``History``) and the link loss the trainers share (``pair_bce``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class History:
    """Per-epoch records and the best-validation model's scores."""

    metric: str
    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = float("nan")
    test_at_best: float = float("nan")
    seconds: float = 0.0

    @property
    def num_epochs(self) -> int:
        return len(self.epochs)

    def state(self) -> dict[str, Any]:
        """Everything but the seconds, as plain values (what a checkpoint keeps)."""
        from gnnsys.checkpoint import plain

        return plain({"metric": self.metric, "epochs": self.epochs, "best_epoch": self.best_epoch,
                      "best_val": self.best_val, "test_at_best": self.test_at_best})

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> History:
        """The ``History`` that ``state()`` described."""
        return cls(metric=state["metric"], epochs=list(state["epochs"]), best_epoch=int(state["best_epoch"]),
                   best_val=float(state["best_val"]), test_at_best=float(state["test_at_best"]))

    def to_dict(self) -> dict[str, Any]:
        """The run record: metric, best epoch, ``val``/``test`` at it, epochs, seconds, history."""
        return {"metric": self.metric, "best_epoch": self.best_epoch, "val": self.best_val,
                "test": self.test_at_best, "epochs": self.num_epochs, "seconds": self.seconds,
                "history": self.epochs}


def pair_bce(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Link loss: BCE of the positive pairs' logits against 1 plus the negative pairs' against 0,
    each averaged over its own pairs. An empty set (a subgraph with no training pair inside, or
    with no non-edge) adds 0 instead of the NaN of an empty mean."""

    def mean_bce(x: torch.Tensor, target: float) -> torch.Tensor:
        total = F.binary_cross_entropy_with_logits(x, torch.full_like(x, target), reduction="sum")
        return total / max(x.numel(), 1)

    return mean_bce(pos, 1.0) + mean_bce(neg, 0.0)
