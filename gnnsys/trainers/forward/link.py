"""ForwardGNN link prediction: ``forward-ce``, ``forward-ff`` (greedy, layer by layer) and
``top-down`` (time steps, each layer's input = ``norm(S[j]) ⊕ norm(S[j+2])``).

Per layer a pair ``(u, v)`` is represented by ``z_u ⊙ z_v``; ``forward-ce`` scores it with
``Σ (z_u ⊙ z_v)`` and ``forward-ff`` with the goodness ``Σ (z_u ⊙ z_v)² − θ``; both train with
BCE against sampled negatives. Predict: the mean over layers of ``sigmoid(score)``.
Featureless graphs (ogbl-ddi) learn an input embedding owned by layer 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from typing import Any

import torch
from torch import nn

from gnnsys.batch import MiniBatch
from gnnsys.checkpoint import TrainerCheckpoint, load_source_state, plain, source_state
from gnnsys.dataset import Dataset
from gnnsys.metrics import higher_is_better, link_metric
from gnnsys.samplers.full import LinkBatchLoader
from gnnsys.trainers.base import History, pair_bce
from gnnsys.trainers.forward.common import (
    EarlyStopping,
    ForwardSettings,
    l2norm,
    make_layer,
    make_optimizer,
    resume_layer,
)
from gnnsys.trainers.forward.topdown import TimeStepForward


def pair_logits(z: torch.Tensor, pairs: torch.Tensor, variant: str, theta: float) -> torch.Tensor:
    """Per-pair score of one layer's states ``z`` (``forward-ff``: goodness − θ)."""
    e = z[pairs[0]] * z[pairs[1]]
    if variant == "forward-ff":
        return e.pow(2).sum(-1) - theta
    return e.sum(-1)


class LinkForward:
    """Greedy ``forward-ce``/``forward-ff`` and time-step ``top-down`` link training."""

    def __init__(self, s: ForwardSettings, dataset: Dataset, device: torch.device, seed: int = 0) -> None:
        self.s, self.dataset, self.device, self.seed = s, dataset, device, seed
        self.full = MiniBatch.full(dataset, device)
        self.featureless = self.full.x is None
        self.in_dim = s.hidden if self.featureless else self.full.x.size(1)
        self.x0 = None if self.featureless else l2norm(self.full.x.float())
        self.ogb = dataset.meta.get("ogb_name")
        self.higher = higher_is_better(dataset.metric)
        self.layer_stats: list[dict] = []

    def _embedding(self) -> nn.Embedding | None:
        if not self.featureless:
            return None
        emb = nn.Embedding(self.dataset.num_nodes, self.s.hidden)
        nn.init.xavier_uniform_(emb.weight)
        return emb

    def _loader(self, loader: Iterable[MiniBatch] | None) -> tuple[Iterable[MiniBatch], bool]:
        if loader is not None:
            return loader, False
        from gnnsys.loading import LoadingPipeline

        bs = self.s.batch_size or 65536
        return LoadingPipeline(LinkBatchLoader(self.dataset, bs, self.s.num_neg, self.seed), self.dataset,
                               device=self.device), True

    def _bce(self, z: torch.Tensor, batch: MiniBatch) -> torch.Tensor:
        pos = pair_logits(z, batch.pos_edges, self.s.variant if self.s.variant != "top-down" else "forward-ce",
                          self.s.theta)
        neg = pair_logits(z, batch.neg_edges, self.s.variant if self.s.variant != "top-down" else "forward-ce",
                          self.s.theta)
        return pair_bce(pos, neg)

    @torch.no_grad()
    def probs(self, z: torch.Tensor, pairs: torch.Tensor, variant: str) -> torch.Tensor:
        out = []
        for i in range(0, pairs.size(1), 1 << 18):
            p = pairs[:, i:i + (1 << 18)].to(z.device)
            out.append(torch.sigmoid(pair_logits(z, p, variant, self.s.theta)).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def metrics(self, prob: dict[str, torch.Tensor]) -> dict[str, float]:
        res = {}
        for k in ("valid", "test"):
            if k in prob:
                res[k] = link_metric(self.dataset.metric, prob[k], prob[f"{k}_neg"], self.ogb)
        return res

    def eval_probs(self, z: torch.Tensor, variant: str) -> dict[str, torch.Tensor]:
        sp = self.dataset.split
        return {k: self.probs(z, sp[k], variant) for k in ("valid", "valid_neg", "test", "test_neg") if k in sp}

    # ------------------------------------------------------------------ entry
    def fit(self, loader: Iterable[MiniBatch] | None, quiet: bool = True,
            checkpoint: TrainerCheckpoint | None = None) -> History:
        """Train the variant; ``checkpoint``: resume from its state and hand it this trainer's
        state after every epoch (``gnnsys.checkpoint``)."""
        if self.s.variant == "top-down":
            self.topdown = TopDownLink(self)
            return self.topdown.fit(loader, quiet, checkpoint)
        return self.fit_greedy(loader, quiet, checkpoint)

    # ------------------------------------------------- greedy: the layer stack
    def _new_layer(self, i: int) -> nn.Module:
        s = self.s
        layer = make_layer(s, self.in_dim if i == 0 else s.hidden, s.hidden)
        if i == 0:
            layer.embedding = self._embedding()
        layer.to(self.device)
        self.layers.append(layer)
        return layer

    def _input(self, i: int, batch: MiniBatch) -> torch.Tensor:
        """Layer ``i``'s (frozen) input on ``batch``: its own embedding (layer 0 without
        features), the full-graph state below it, or the lower layers run on the batch."""
        layer = self.layers[i]
        if i == 0 and layer.embedding is not None:
            return l2norm(layer.embedding(batch.node_ids))
        if self._full_graph:
            return self._h_full
        with torch.no_grad():
            h = l2norm(batch.x.float()) if batch.x is not None else None
            for j, lower in enumerate(self.layers[:i]):
                lower.eval()
                if j == 0 and lower.embedding is not None:
                    h = l2norm(lower.embedding(batch.node_ids))
                h = l2norm(lower(h, batch))
        return h

    @torch.no_grad()
    def _finish_layer(self, i: int) -> dict[str, float]:
        """Layer ``i`` (at its best weights) joins the frozen stack: its full-graph output
        becomes the next input, its pair probabilities join the average; returns the stack's
        metrics."""
        layer = self.layers[i]
        layer.eval()
        z = layer(self._input(i, self.full), self.full)
        self._z.append(z)
        p = self.eval_probs(z, self.s.variant)
        self._acc = p if self._acc is None else {k: self._acc[k] + p[k] for k in p}
        self._h_full = l2norm(z)
        return self.metrics({k: v / (i + 1) for k, v in self._acc.items()})

    def _start(self, full_graph: bool) -> None:
        self.layers: list[nn.Module] = []
        self._full_graph = full_graph
        self._h_full = self.x0  # frozen input of the current layer on the full graph
        self._acc: dict[str, torch.Tensor] | None = None  # summed per-layer probabilities
        self._z: list[torch.Tensor] = []

    def _state(self, hist: History, total_epochs: int, source: Any, layer: nn.Module, opt: torch.optim.Optimizer,
               stop: EarlyStopping, epoch: int, done: bool) -> dict:
        """What a checkpoint keeps at the end of an epoch of the newest layer."""
        return {"history": hist.state(), "total_epochs": total_epochs, "layer_stats": plain(self.layer_stats),
                "done_layers": [la.state_dict() for la in self.layers[:-1]],
                "current": {"layer": layer.state_dict(), "optimizer": opt.state_dict(), "stop": stop.state_dict(),
                            "epoch": epoch, "done": done},
                "loader": source_state(source)}

    def _load_layers(self, states: list[dict]) -> list[dict[str, float]]:
        """Rebuild trained layers from their weights and recompute what they hand on."""
        out = []
        for st in states:
            i = len(self.layers)
            self._new_layer(i).load_state_dict(st)
            out.append(self._finish_layer(i))
        return out

    def fit_greedy(self, loader: Iterable[MiniBatch] | None, quiet: bool,
                   checkpoint: TrainerCheckpoint | None = None) -> History:
        """Train the layers one after another (``forward-ce`` / ``forward-ff``)."""
        s = self.s
        hist = History(metric=self.dataset.metric)
        t0 = time.perf_counter()
        loader, full_graph = self._loader(loader)
        self._start(full_graph)
        total_epochs = 0
        st = checkpoint.state if checkpoint is not None else None
        if st is not None:
            hist = History.from_state(st["history"])
            total_epochs, layer_stats = int(st["total_epochs"]), list(st["layer_stats"])
            self._load_layers(st["done_layers"])
            self.layer_stats = layer_stats
            load_source_state(loader, st["loader"])
        for i in range(len(self.layers), s.layers):
            layer = self._new_layer(i)
            opt = make_optimizer(layer, s)
            stop = EarlyStopping(layer, s.patience, self.higher)
            first, done = 1, False
            if st is not None:
                first, done = resume_layer(st["current"], layer, opt, stop, checkpoint)
                st = None
            for epoch in range(first, first if done else s.epochs + 1):
                layer.train()
                tot, nb = 0.0, 0
                for batch in loader:
                    batch = batch.to(self.device)
                    loss = self._bce(layer(self._input(i, batch), batch), batch)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    tot, nb = tot + float(loss.detach()), nb + 1
                total_epochs += 1
                rec = {"layer": i, "epoch": epoch, "loss": tot / max(nb, 1)}
                stopping = False
                if epoch % s.eval_every == 0 or epoch == s.epochs:
                    layer.eval()
                    with torch.no_grad():
                        p = self.eval_probs(layer(self._input(i, self.full), self.full), s.variant)
                    cur_p = p if self._acc is None else {k: self._acc[k] + p[k] for k in p}
                    rec.update(self.metrics({k: v / (i + 1) for k, v in cur_p.items()}))
                    stopping = stop.step(epoch, rec["valid"], s.eval_every)
                hist.epochs.append(rec)
                done = stopping or epoch == s.epochs
                if checkpoint is not None:
                    checkpoint.epoch_done(partial(self._state, hist, total_epochs, loader, layer, opt, stop, epoch,
                                                  done), finished=done and i == s.layers - 1)
                if stopping:
                    break
            stop.restore()
            m = self._finish_layer(i)
            self.layer_stats.append({"layer": i, "best_epoch": stop.best_epoch, **m})
            if not quiet:
                print(f"  layer {i}: best epoch {stop.best_epoch} {m}", flush=True)
        final = self.layer_stats[-1]
        hist.best_val, hist.test_at_best = final["valid"], final.get("test", float("nan"))
        hist.best_epoch = total_epochs
        hist.seconds = time.perf_counter() - t0
        return hist

    # ------------------------------------------------------------ saved models
    def export(self) -> dict:
        """The trained layers' weights (``restore`` rebuilds the model from them)."""
        if self.s.variant == "top-down":
            return self.topdown.export()
        return {"layers": [layer.state_dict() for layer in self.layers]}

    def restore(self, saved: dict) -> None:
        """Rebuild the trained model from what ``export`` gave."""
        if self.s.variant == "top-down":
            self.topdown = TopDownLink(self)
            self.topdown.restore(saved)
            return
        self._start(True)
        self._final = self._load_layers(saved["layers"])[-1]

    def evaluate(self) -> dict[str, float]:
        """Validation and test metrics of the trained (restored) model."""
        if self.s.variant == "top-down":
            return self.topdown.evaluate()
        return self._final

    @torch.no_grad()
    def pair_scores(self, pairs: torch.Tensor) -> torch.Tensor:
        """Each pair's probability of being an edge (the layers' sigmoids averaged)."""
        if self.s.variant == "top-down":
            return self.topdown.pair_scores(pairs)
        return sum(self.probs(z, pairs, self.s.variant) for z in self._z) / len(self._z)


class TopDownLink(TimeStepForward):
    """Link ``top-down``: time steps over all layers; layer ``j``'s input is
    ``norm(S[j]) ⊕ norm(S[j+2])`` (the top layer sees only the state below); per-layer
    ``forward-ce`` loss; inference runs ``timesteps`` steps and averages the layer sigmoids."""

    def __init__(self, base: LinkForward) -> None:
        self.base, self.s, self.device = base, base.s, base.device
        self.higher_better = base.higher
        s = self.s
        self.n = base.dataset.num_nodes
        self.rows = torch.arange(self.n, device=self.device)
        in_dims = [(base.in_dim if j == 0 else s.hidden) + (s.hidden if j + 1 < s.layers else 0)
                   for j in range(s.layers)]
        layers = [make_layer(s, in_dims[j], s.hidden) for j in range(s.layers)]
        layers[0].embedding = base._embedding()
        self.layers = nn.ModuleList(layers).to(self.device)
        self._loader_cache: Iterable[MiniBatch] | None = None

    def base_states(self) -> list[torch.Tensor]:
        x0 = self.base.x0 if self.base.x0 is not None else torch.zeros(self.n, 0, device=self.device)
        z = [torch.zeros(self.n, self.s.hidden, device=self.device) for _ in range(self.s.layers)]
        return [x0, *z, None]

    def input_state0(self, states: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        emb = self.layers[0].embedding
        return emb(rows) if emb is not None else states[0][rows]

    def batch_view(self, batch: MiniBatch) -> tuple[MiniBatch, torch.Tensor]:
        return batch, batch.node_ids

    def loss(self, j: int, e: torch.Tensor, view: MiniBatch, batch: MiniBatch) -> torch.Tensor:
        return self.base._bce(e, batch)

    def fit(self, loader: Iterable[MiniBatch] | None, quiet: bool = True,
            checkpoint: TrainerCheckpoint | None = None) -> History:
        loader, _ = self.base._loader(loader)
        hist = super().fit(loader, quiet, checkpoint)
        hist.metric = self.base.dataset.metric
        return hist

    def evaluate(self) -> dict[str, float]:
        states = self.infer(self.base.full, self.rows, self.s.timesteps)
        acc = None
        for j in range(self.s.layers):
            p = self.base.eval_probs(states[j + 1], "forward-ce")
            acc = p if acc is None else {k: acc[k] + p[k] for k in p}
        return self.base.metrics({k: v / self.s.layers for k, v in acc.items()})

    @torch.no_grad()
    def pair_scores(self, pairs: torch.Tensor) -> torch.Tensor:
        """Each pair's probability of being an edge (the layers' sigmoids averaged)."""
        states = self.infer(self.base.full, self.rows, self.s.timesteps)
        return sum(self.base.probs(states[j + 1], pairs, "forward-ce") for j in range(self.s.layers)) / self.s.layers
