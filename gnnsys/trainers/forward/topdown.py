"""Time-step ForwardGNN training with top-down signals: SF Top-to-Input (``sf-top2input``),
SF Top-to-Loss (``sf-top2loss``) and the engine the link ``top-down`` variant shares.

Node states ``S[0..L+1]`` live in global buffers (``S[0]`` the input, ``S[L+1]`` the top
state: the label matrix for node classification). One time step updates every layer once,
the even layers first and then the odd ones, each from the detached states of the previous
update. Layer ``j`` (0-based) writes ``S[j+1]``.

- Top-to-Input: layer ``j``'s input is ``norm(S[j]) ⊕ norm(S[j+2])``.
- Top-to-Loss: layer ``j``'s input is ``norm(S[j])``; its loss embedding is the mean of its
  output and the detached states of the layers above it from the previous step.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gnnsys.batch import MiniBatch
from gnnsys.checkpoint import TrainerCheckpoint, load_source_state, source_state
from gnnsys.dataset import Dataset
from gnnsys.metrics import accuracy
from gnnsys.trainers.base import History
from gnnsys.trainers.forward.common import (
    EarlyStopping,
    ForwardLayer,
    ForwardSettings,
    class_logits,
    class_means,
    l2norm,
    make_layer,
    make_optimizer,
    node_input,
    targets,
    weighted_mean,
    with_virtual_nodes,
)


class TimeStepForward:
    """Engine of the top-down variants. Subclasses set ``self.layers``, ``self.top_down``,
    ``self.loss_avg`` and implement ``base_states``, ``batch_view``, ``loss`` and ``evaluate``."""

    top_down = True  # Top-to-Input: the state above is part of a layer's input
    loss_avg = False  # Top-to-Loss: the loss embedding averages the states above
    higher_better = True

    s: ForwardSettings
    layers: nn.ModuleList
    device: torch.device

    # ---------------------------------------------------------------- hooks
    def base_states(self) -> list[torch.Tensor]:
        """Fresh global states ``S[0..L+1]`` (inputs and top state set, hidden states zero)."""
        raise NotImplementedError

    def batch_view(self, batch: MiniBatch) -> tuple[MiniBatch, torch.Tensor]:
        """The graph a training batch runs on and the global state rows of its nodes."""
        raise NotImplementedError

    def loss(self, j: int, e: torch.Tensor, view: MiniBatch, batch: MiniBatch) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        raise NotImplementedError

    def input_state0(self, states: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        """``S[0]`` rows (subclasses with learned input embeddings override this)."""
        return states[0][rows]

    # ---------------------------------------------------------------- one layer
    def layer_input(self, j: int, states: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        below = l2norm(self.input_state0(states, rows) if j == 0 else states[j][rows])
        if not self.top_down or j + 2 >= len(states) or states[j + 2] is None:
            return below
        return torch.cat([below, l2norm(states[j + 2][rows])], 1)

    def loss_embedding(self, j: int, h: torch.Tensor, states: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        if not self.loss_avg:
            return h
        above = [states[m][rows] for m in range(j + 2, self.s.layers + 1)]
        return torch.stack([h, *above]).mean(0) if above else h

    def time_step(self, states: list[torch.Tensor], view: MiniBatch, rows: torch.Tensor, batch: MiniBatch | None,
                  opts: list[torch.optim.Optimizer] | None) -> float:
        """Update every layer once (even layers, then odd); train when ``opts`` is given."""
        total = 0.0
        for parity in (0, 1):
            for j in range(parity, self.s.layers, 2):
                layer = self.layers[j]
                if opts is None:
                    with torch.no_grad():
                        h = layer(self.layer_input(j, states, rows), view)
                else:
                    h = layer(self.layer_input(j, states, rows), view)
                    loss = self.loss(j, self.loss_embedding(j, h, states, rows), view, batch)
                    opts[j].zero_grad()
                    loss.backward()
                    opts[j].step()
                    total += float(loss.detach())
                states[j + 1][rows] = h.detach()
        return total

    @torch.no_grad()
    def infer(self, view: MiniBatch, rows: torch.Tensor, steps: int) -> list[torch.Tensor]:
        """States after ``steps`` inference time steps from fresh states (eval mode)."""
        self.layers.eval()
        states = self.base_states()
        for _ in range(steps):
            self.time_step(states, view, rows, None, None)
        return states

    # ---------------------------------------------------------------- training
    def _state(self, hist: History, opts: list[torch.optim.Optimizer], stop: EarlyStopping,
               states: list[torch.Tensor], loader: Any, step: int, done: bool) -> dict:
        """What a checkpoint keeps at the end of a time step."""
        return {"layers": self.layers.state_dict(), "optimizers": [o.state_dict() for o in opts],
                "stop": stop.state_dict(), "history": hist.state(),
                "states": [t.clone() for t in states[1:self.s.layers + 1]], "step": step, "done": done,
                "loader": source_state(loader)}

    def fit(self, loader: Iterable[MiniBatch] | None, quiet: bool = True,
            checkpoint: TrainerCheckpoint | None = None) -> History:
        """Train for ``s.epochs`` time steps (early stopping on validation); ``checkpoint``:
        resume from its state and hand it this trainer's state after every step."""
        s = self.s
        hist = History(metric="")
        t0 = time.perf_counter()
        opts = [make_optimizer(layer, s) for layer in self.layers]
        stop = EarlyStopping(self.layers, s.patience, self.higher_better)
        states = self.base_states()
        batches = [None] if loader is None else loader
        first, done = 1, False
        st = checkpoint.state if checkpoint is not None else None
        if st is not None:
            self.layers.load_state_dict(st["layers"])
            for opt, saved in zip(opts, st["optimizers"]):
                opt.load_state_dict(saved)
            stop.load_state_dict(st["stop"])
            hist = History.from_state(st["history"])
            for j, t in enumerate(st["states"]):
                states[j + 1].copy_(t)
            load_source_state(loader, st["loader"])
            first, done = int(st["step"]) + 1, bool(st["done"])
            checkpoint.restore_rng()
        for step in range(first, first if done else s.epochs + 1):
            self.layers.train()
            tot, nb = 0.0, 0
            for batch in batches:
                batch = self.default_batch() if batch is None else batch.to(self.device)
                view, rows = self.batch_view(batch)
                tot += self.time_step(states, view, rows, batch, opts) / s.layers
                nb += 1
            rec = {"epoch": step, "loss": tot / max(nb, 1)}
            stopping = False
            if step % s.eval_every == 0 or step == s.epochs:
                rec.update(self.evaluate())
                stopping = stop.step(step, rec["valid"], s.eval_every)
                if stop.best_epoch == step:
                    hist.best_epoch, hist.best_val = step, rec["valid"]
                    hist.test_at_best = rec.get("test", float("nan"))
                hist.epochs.append(rec)
                if not quiet:
                    print(f"  step {step}: loss {rec['loss']:.4f} val {rec['valid']:.4f}", flush=True)
            else:
                hist.epochs.append(rec)
            done = stopping or step == s.epochs
            if checkpoint is not None:
                checkpoint.epoch_done(partial(self._state, hist, opts, stop, states, loader, step, done),
                                      finished=done)
            if stopping:
                break
        stop.restore()
        hist.seconds = time.perf_counter() - t0
        return hist

    def export(self) -> dict:
        """The trained layers' weights (``restore`` rebuilds the model from them)."""
        return {"layers": self.layers.state_dict()}

    def restore(self, saved: dict) -> None:
        """Load weights that ``export`` gave."""
        self.layers.load_state_dict(saved["layers"])

    def default_batch(self) -> MiniBatch:
        raise NotImplementedError


class TopDownNode(TimeStepForward):
    """SF with top-down signals on a node task: the SF graph (labeled nodes linked to class
    virtual nodes), per-layer CE on ``h_labeled · h_vnᵀ / τ``; the top state is the label
    matrix (one-hot rows for labeled nodes and the virtual nodes, zeros elsewhere).
    Predict: run ``timesteps`` inference steps (10 by default), sum the per-layer softmaxes."""

    def __init__(self, s: ForwardSettings, dataset: Dataset, split: dict[str, torch.Tensor], labels: torch.Tensor,
                 device: torch.device, top_down: bool) -> None:
        self.s, self.dataset, self.split, self.device = s, dataset, split, device
        self.top_down, self.loss_avg = top_down, not top_down
        self.y = labels.to(device)
        self.n, self.k = dataset.num_nodes, dataset.num_classes
        full = MiniBatch.full(dataset, device)
        tr = split["train"].to(device)
        full.target = tr
        x = l2norm(node_input(dataset, full))
        self.full = with_virtual_nodes(full, x, tr, self.y[tr], self.k, class_means(x, tr, self.y[tr], self.k),
                                       self.s.vn_edges)
        self.rows_full = torch.arange(self.n + self.k, device=device)
        top = torch.zeros(self.n + self.k, self.k, device=device)
        top[tr] = F.one_hot(self.y[tr], self.k).float()
        top[self.n:] = torch.eye(self.k, device=device)
        self.top = top
        dims = [x.size(1)] + [s.hidden] * s.layers + [self.k]
        in_dims = [dims[j] + (dims[j + 2] if top_down else 0) for j in range(s.layers)]
        self.layers = nn.ModuleList([make_layer(s, in_dims[j], s.hidden) for j in range(s.layers)]).to(device)

    def base_states(self) -> list[torch.Tensor]:
        z = [torch.zeros(self.n + self.k, self.s.hidden, device=self.device) for _ in range(self.s.layers)]
        return [self.full.x, *z, self.top]

    def default_batch(self) -> MiniBatch:
        return self.full

    def batch_view(self, batch: MiniBatch) -> tuple[MiniBatch, torch.Tensor]:
        if batch is self.full:
            return self.full, self.rows_full
        tgt, _ = targets(batch)
        yb = self.y[batch.node_ids][tgt]
        x = l2norm(node_input(self.dataset, batch))
        view = with_virtual_nodes(batch, x, tgt, yb, self.k, class_means(x, tgt, yb, self.k), self.s.vn_edges)
        rows = torch.cat([batch.node_ids, self.n + torch.arange(self.k, device=self.device)])
        return view, rows

    def loss(self, j: int, e: torch.Tensor, view: MiniBatch, batch: MiniBatch) -> torch.Tensor:
        tgt, w = targets(view)
        nb = view.num_nodes - self.k
        y = self.y[view.node_ids[tgt]]
        logits = class_logits(e[tgt], e[nb:], self.s)
        return weighted_mean(F.cross_entropy(logits, y, reduction="none"), w)

    @torch.no_grad()
    def scores(self) -> torch.Tensor:
        steps = self.s.timesteps if self.top_down else self.s.layers
        states = self.infer(self.full, self.rows_full, steps)
        total = torch.zeros(self.n, self.k, device=self.device)
        for j in range(self.s.layers):
            e = self.loss_embedding(j, states[j + 1], states, self.rows_full)
            total += torch.softmax(class_logits(e[: self.n], e[self.n:], self.s), -1)
        return total

    def node_scores(self) -> torch.Tensor:
        """Class scores ``[N, K]`` (the per-layer softmaxes summed)."""
        return self.scores()

    def evaluate(self) -> dict[str, float]:
        """Validation and test accuracy of the current weights."""
        sc = self.scores().cpu()
        y = self.y.cpu()
        return {k: accuracy(sc[self.split[k]], y[self.split[k]]) for k in ("valid", "test") if k in self.split}


def _top2input(s: ForwardSettings, dataset: Dataset, split: dict[str, torch.Tensor], labels: torch.Tensor,
               device: torch.device) -> TopDownNode:
    return TopDownNode(s, dataset, split, labels, device, top_down=True)


def _top2loss(s: ForwardSettings, dataset: Dataset, split: dict[str, torch.Tensor], labels: torch.Tensor,
              device: torch.device) -> TopDownNode:
    return TopDownNode(s, dataset, split, labels, device, top_down=False)


TOPDOWN_NODE_VARIANTS = {"sf-top2input": _top2input, "sf-top2loss": _top2loss}
__all__ = ["TimeStepForward", "TopDownNode", "TOPDOWN_NODE_VARIANTS", "ForwardLayer"]
