"""Greedy ForwardGNN node classifiers: FF with label appending (``ff-la``), FF with class
virtual nodes (``ff-vn``) and the single-forward SF (``sf``).

Layers are trained one after the other. Layer ``i`` learns from its own loss on the
L2-normalized, detached outputs of the frozen layers below; it stops early on the validation
accuracy of the prediction summed over layers ``0..i`` and keeps its best weights.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from gnnsys.batch import MiniBatch
from gnnsys.checkpoint import TrainerCheckpoint, load_source_state, plain, source_state
from gnnsys.dataset import Dataset
from gnnsys.metrics import accuracy
from gnnsys.trainers.base import History
from gnnsys.trainers.forward.common import (
    EarlyStopping,
    ForwardLayer,
    ForwardSettings,
    class_logits,
    class_means,
    ff_loss,
    goodness,
    l2norm,
    make_layer,
    make_optimizer,
    node_input,
    resume_layer,
    targets,
    weighted_mean,
    with_virtual_nodes,
)


@dataclass
class View:
    """One graph a layer runs on: the batch (graph, possibly with virtual nodes) and its
    layer-0 input ``x0`` (normalized features, possibly with an appended label)."""

    batch: MiniBatch
    x0: torch.Tensor
    key: str


class GreedyNodeForward:
    """Base of the greedy node variants; subclasses define their views, loss and scores."""

    uses_virtual_nodes = False
    #: Whether every training view of layer ``i >= 1`` takes the positive view's states as
    #: input (FF-VN in the paper's code: the views differ only in their virtual-node links),
    #: rather than its own states through the frozen layers (FF-LA: the label rides along).
    shares_positive_states = False

    def __init__(self, s: ForwardSettings, dataset: Dataset, split: dict[str, torch.Tensor], labels: torch.Tensor,
                 device: torch.device) -> None:
        self.s, self.dataset, self.split, self.device = s, dataset, split, device
        self.y = labels.to(device)
        self.k = dataset.num_classes
        self.n = dataset.num_nodes
        self.layers: list[ForwardLayer] = []
        self.full = MiniBatch.full(dataset, device)
        self.full.target = split["train"].to(device)
        self.x_full = l2norm(node_input(dataset, self.full))

    # ------------------------------------------------------------------ per-variant
    def in_dim(self) -> int:
        return self.x_full.size(1)

    def train_views(self, batch: MiniBatch) -> list[View]:
        raise NotImplementedError

    def eval_views(self) -> list[View]:
        raise NotImplementedError

    def loss(self, outs: list[torch.Tensor], views: list[View], batch: MiniBatch) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, outs: list[torch.Tensor], views: list[View]) -> torch.Tensor:
        """Class scores ``[N, K]`` of one layer on the eval views (summed over layers)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def batch_labels(self, batch: MiniBatch) -> torch.Tensor:
        if batch.y is not None and batch.y.numel() == batch.num_nodes:
            return batch.y.long()
        return self.y[batch.node_ids.clamp_min(0)]

    @torch.no_grad()
    def frozen_input(self, i: int, view: View) -> torch.Tensor:
        """Input of layer ``i`` on ``view``: frozen layers ``0..i-1`` in eval mode, no graph."""
        h = view.x0
        for layer in self.layers[:i]:
            layer.eval()
            h = l2norm(layer(h, view.batch))
        return h

    # ------------------------------------------------------------------ training
    def _start(self, full_batch: bool) -> None:
        """Inputs of layer 0 on the evaluation (and, full-batch, training) views; no scores yet."""
        self._cached_train: list[View] | None = self.train_views(self.full) if full_batch else None
        self._eval_views = self.eval_views()
        self._eval_in = [v.x0 for v in self._eval_views]
        self._train_in = [v.x0 for v in self._cached_train] if self._cached_train is not None else None
        self._prev = torch.zeros(self.n, self.k, device=self.device)

    @torch.no_grad()
    def _finish_layer(self, layer: ForwardLayer) -> None:
        """A trained layer (at its best weights) joins the frozen stack: add its scores, and
        make its outputs the next layer's inputs."""
        layer.eval()
        outs = [layer(x, v.batch) for x, v in zip(self._eval_in, self._eval_views)]
        self._prev = self._prev + self.scores(outs, self._eval_views)
        self._eval_in = [l2norm(o) for o in outs]
        cached = self._cached_train
        if self._train_in is not None and self.shares_positive_states:
            self._train_in = [l2norm(layer(self._train_in[0], cached[0].batch))] * len(cached)
        elif self._train_in is not None:
            self._train_in = [l2norm(layer(x, v.batch)) for x, v in zip(self._train_in, cached)]

    def _new_layer(self, i: int) -> ForwardLayer:
        layer = make_layer(self.s, self.in_dim() if i == 0 else self.s.hidden, self.s.hidden).to(self.device)
        self.layers.append(layer)
        return layer

    def load_layers(self, states: list[dict]) -> None:
        """Rebuild trained layers from their weights (a checkpoint's or a saved model's) and
        recompute what they hand on, as training left it; ``final_scores`` then holds the
        class scores of the stack."""
        if not hasattr(self, "_prev"):
            self._start(True)
        for st in states:
            layer = self._new_layer(len(self.layers))
            layer.load_state_dict(st)
            self._finish_layer(layer)
        self.final_scores = self._prev

    def export(self) -> dict:
        """The trained layers' weights (``restore`` rebuilds the model from them)."""
        return {"layers": [layer.state_dict() for layer in self.layers]}

    def restore(self, saved: dict) -> None:
        """Rebuild the model from what ``export`` gave (``final_scores`` holds its scores)."""
        self.load_layers(saved["layers"])

    def node_scores(self) -> torch.Tensor:
        """Class scores ``[N, K]`` of the trained stack (summed over layers)."""
        return self.final_scores

    def _state(self, hist: History, total_epochs: int, source: Any, layer: ForwardLayer, opt: torch.optim.Optimizer,
               stop: EarlyStopping, best_rec: dict, epoch: int, done: bool) -> dict:
        """What a checkpoint keeps at the end of an epoch of the last layer in ``self.layers``."""
        return {"history": hist.state(), "total_epochs": total_epochs, "layer_stats": plain(self.layer_stats),
                "done_layers": [la.state_dict() for la in self.layers[:-1]],
                "current": {"layer": layer.state_dict(), "optimizer": opt.state_dict(), "stop": stop.state_dict(),
                            "best_rec": plain(best_rec), "epoch": epoch, "done": done},
                "loader": source_state(source)}

    def fit(self, loader: Iterable[MiniBatch] | None, quiet: bool = True,
            checkpoint: TrainerCheckpoint | None = None) -> History:
        """Train all layers greedily; returns the history (metric: accuracy). ``checkpoint``:
        resume from its state and hand it this trainer's state after every epoch."""
        s = self.s
        hist = History(metric="acc")
        t0 = time.perf_counter()
        full_batch = loader is None
        source = loader
        loader = [self.full] if loader is None else loader
        self._start(full_batch)
        total_epochs = 0
        self.layer_stats: list[dict] = []
        st = checkpoint.state if checkpoint is not None else None
        if st is not None:
            hist = History.from_state(st["history"])
            total_epochs, self.layer_stats = int(st["total_epochs"]), list(st["layer_stats"])
            self.load_layers(st["done_layers"])
            load_source_state(source, st["loader"])
        for i in range(len(self.layers), s.layers):
            layer = self._new_layer(i)
            opt = make_optimizer(layer, s)
            stop = EarlyStopping(layer, s.patience)
            best_rec: dict = {}
            first, done = 1, False
            if st is not None:
                best_rec = dict(st["current"]["best_rec"])
                first, done = resume_layer(st["current"], layer, opt, stop, checkpoint)
                st = None

            for epoch in range(first, first if done else s.epochs + 1):
                layer.train()
                tot, nb = 0.0, 0
                for batch in loader:
                    if full_batch:
                        views, inputs = self._cached_train, self._train_in
                    else:
                        batch = batch.to(self.device)
                        views = self.train_views(batch)
                        if self.shares_positive_states:
                            inputs = [self.frozen_input(i, views[0])] * len(views)
                        else:
                            inputs = [self.frozen_input(i, v) for v in views]
                    outs = [layer(x, v.batch) for x, v in zip(inputs, views)]
                    loss = self.loss(outs, views, batch)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    tot, nb = tot + float(loss.detach()), nb + 1
                total_epochs += 1
                rec = {"layer": i, "epoch": epoch, "loss": tot / max(nb, 1)}
                stopping = False
                if epoch % s.eval_every == 0 or epoch == s.epochs:
                    sc = self._prev + self.layer_scores(layer, self._eval_in, self._eval_views)
                    rec.update(self.accuracies(sc))
                    stopping = stop.step(epoch, rec["valid"], s.eval_every)
                    if not stopping and stop.best_epoch == epoch:
                        best_rec = rec
                hist.epochs.append(rec)
                done = stopping or epoch == s.epochs
                if checkpoint is not None:
                    checkpoint.epoch_done(partial(self._state, hist, total_epochs, source, layer, opt, stop, best_rec,
                                                  epoch, done), finished=done and i == s.layers - 1)
                if stopping:
                    break
            stop.restore()
            self._finish_layer(layer)
            self.layer_stats.append({"layer": i, "best_epoch": stop.best_epoch, **self.accuracies(self._prev)})
            if not quiet:
                print(f"  layer {i}: best epoch {stop.best_epoch} val {best_rec.get('valid', float('nan')):.4f}",
                      flush=True)
        final = self.accuracies(self._prev)
        self.final_scores = self._prev
        hist.best_val, hist.test_at_best = final["valid"], final["test"]
        hist.best_epoch = total_epochs
        hist.seconds = time.perf_counter() - t0
        return hist

    @torch.no_grad()
    def layer_scores(self, layer: ForwardLayer, eval_in: list[torch.Tensor], views: list[View]) -> torch.Tensor:
        layer.eval()
        return self.scores([layer(x, v.batch) for x, v in zip(eval_in, views)], views)

    def accuracies(self, sc: torch.Tensor) -> dict[str, float]:
        sc = sc.cpu()
        y = self.y.cpu()
        return {k: accuracy(sc[self.split[k]], y[self.split[k]]) for k in ("valid", "test") if k in self.split}


class GoodnessNodeForward(GreedyNodeForward):
    """The forward-forward variants' shared rule: view 0 is the positive graph, the rest
    negatives; loss = BCE on goodness ``Σh² − θ`` of the labeled nodes; a node's score for
    a view is its goodness."""

    def loss(self, outs: list[torch.Tensor], views: list[View], batch: MiniBatch) -> torch.Tensor:
        tgt, w = targets(batch)
        logits = [goodness(o[tgt]) - self.s.theta for o in outs]
        return ff_loss(logits[0], logits[1:], w)

    def scores(self, outs: list[torch.Tensor], views: list[View]) -> torch.Tensor:
        return torch.stack([goodness(o[: self.n]) for o in outs], 1)


class FFLabelAppend(GoodnessNodeForward):
    """FF-LA: input = normalized features ⊕ label (one-hot for labeled nodes, uniform
    ``1/K`` elsewhere). Positive graph: true labels; negatives: one graph copy per wrong
    class shift ``(y + j) mod K``. Loss: BCE on goodness ``Σh² − θ`` of the labeled nodes.
    Predict: append class ``c`` to every unlabeled node, sum goodness over layers, argmax."""

    def in_dim(self) -> int:
        return self.x_full.size(1) + self.k

    def _with_labels(self, x: torch.Tensor, labeled: torch.Tensor, lab: torch.Tensor, rest: int | None) -> torch.Tensor:
        n = x.size(0)
        onehot = torch.full((n, self.k), 1.0 / self.k, device=x.device) if rest is None else \
            F.one_hot(torch.full((n,), rest, device=x.device), self.k).float()
        onehot[labeled] = F.one_hot(lab, self.k).float()
        return torch.cat([x, onehot], 1)

    def train_views(self, batch: MiniBatch) -> list[View]:
        tgt, _ = targets(batch)
        y = self.batch_labels(batch)[tgt]
        x = self.x_full if batch is self.full else l2norm(node_input(self.dataset, batch))
        return [View(batch, self._with_labels(x, tgt, (y + j) % self.k, None), f"shift{j}") for j in range(self.k)]

    def eval_views(self) -> list[View]:
        tr = self.split["train"].to(self.device)
        return [View(self.full, self._with_labels(self.x_full, tr, self.y[tr], c), f"class{c}") for c in range(self.k)]



class FFVirtualNode(GoodnessNodeForward):
    """FF-VN: ``K`` class virtual nodes. Positive graph: labeled nodes linked (both ways) to
    their class node; negatives: one graph copy per wrong class shift. Loss: BCE on goodness
    of the labeled nodes. Every view of layer ``i >= 1`` trains on the positive graph's states
    from the frozen layers below (as the paper's code does). Predict: link every unlabeled node
    to class node ``c``, sum goodness over layers, argmax."""

    uses_virtual_nodes = True
    shares_positive_states = True

    def train_views(self, batch: MiniBatch) -> list[View]:
        tgt, _ = targets(batch)
        y = self.batch_labels(batch)[tgt]
        x = self.x_full if batch is self.full else l2norm(node_input(self.dataset, batch))
        views = []
        vn_x = class_means(x, tgt, y, self.k)
        for j in range(self.k):
            b = with_virtual_nodes(batch, x, tgt, (y + j) % self.k, self.k, vn_x, self.s.vn_edges)
            views.append(View(b, b.x, f"shift{j}"))
        return views

    def eval_views(self) -> list[View]:
        tr = self.split["train"].to(self.device)
        rest = torch.ones(self.n, dtype=torch.bool, device=self.device)
        rest[tr] = False
        rest = rest.nonzero().view(-1)
        members = torch.cat([tr, rest])
        views = []
        vn_x = class_means(self.x_full, tr, self.y[tr], self.k)
        for c in range(self.k):
            cls = torch.cat([self.y[tr], torch.full_like(rest, c)])
            b = with_virtual_nodes(self.full, self.x_full, members, cls, self.k, vn_x, self.s.vn_edges)
            views.append(View(b, b.x, f"class{c}"))
        return views



class SingleForward(GreedyNodeForward):
    """SF: one graph with labeled nodes linked to their class virtual node, no negatives.
    Per layer: logits ``h_labeled · h_vnᵀ / τ`` and cross-entropy. Predict: softmax of
    ``h · h_vnᵀ / τ`` per layer, summed over layers."""

    uses_virtual_nodes = True

    def train_views(self, batch: MiniBatch) -> list[View]:
        tgt, _ = targets(batch)
        y = self.batch_labels(batch)[tgt]
        x = self.x_full if batch is self.full else l2norm(node_input(self.dataset, batch))
        b = with_virtual_nodes(batch, x, tgt, y, self.k, class_means(x, tgt, y, self.k), self.s.vn_edges)
        return [View(b, b.x, "sf")]

    def eval_views(self) -> list[View]:
        if not hasattr(self, "_eval"):
            tr = self.split["train"].to(self.device)
            ytr = self.y[tr]
            b = with_virtual_nodes(self.full, self.x_full, tr, ytr, self.k, class_means(self.x_full, tr, ytr, self.k),
                                   self.s.vn_edges)
            self._eval = [View(b, b.x, "sf")]
        return self._eval

    def loss(self, outs: list[torch.Tensor], views: list[View], batch: MiniBatch) -> torch.Tensor:
        tgt, w = targets(batch)
        h = outs[0]
        n = views[0].batch.num_nodes - self.k
        logits = class_logits(h[tgt], h[n:], self.s)
        y = self.batch_labels(batch)[tgt]
        return weighted_mean(F.cross_entropy(logits, y, reduction="none"), w)

    def scores(self, outs: list[torch.Tensor], views: list[View]) -> torch.Tensor:
        h = outs[0]
        return torch.softmax(class_logits(h[: self.n], h[self.n:], self.s), -1)


GREEDY_NODE_VARIANTS = {"ff-la": FFLabelAppend, "ff-vn": FFVirtualNode, "sf": SingleForward}
