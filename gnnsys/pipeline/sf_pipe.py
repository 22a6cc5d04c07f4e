"""GNNPipe with ForwardGNN's single-forward (SF) training: every layer learns from its own
local loss, so no gradient crosses a layer, let alone a stage, and the backward half of the
pipeline schedule disappears.

The graph gets ``C`` class virtual nodes (``with_virtual_nodes``: training nodes linked to their
class node, one way by default as in ``--trainer forward``); they form an extra chunk ``K``
after the ``K`` METIS chunks, so they read this epoch's member states. Each stage runs the
chunks through its layers in order (historical embeddings for chunks not yet computed, as in
``layer_pipe``), sends each chunk's L2-normalized states to the next stage, and then takes one
step per layer on SF's loss: cross-entropy of ``h_train · h_vnᵀ / τ``. Prediction sums the
per-layer class scores ``softmax(h · h_vnᵀ / τ)`` over all layers: the evaluation forward
carries the running score sum from stage to stage.

Unlike the greedy ``--trainer forward`` (layer ``i`` trained to convergence before layer
``i+1``), all layers train at once, one step per epoch each, on the current states below.
Per training epoch it sends ``(P-1) (N + C) d`` floats: half of backprop GNNPipe's traffic.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from gnnsys.batch import MiniBatch
from gnnsys.checkpoint import TrainerCheckpoint
from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.metrics import accuracy
from gnnsys.pipeline.ckpt import PipeCheckpoint, load_loop, loop_state
from gnnsys.pipeline.common import Selector, bubble, gpipe_bubble, shared_assignment, stage_ranges, train_mask
from gnnsys.pipeline.launch import DistContext
from gnnsys.pipeline.layer_pipe import gather_series
from gnnsys.pipeline.local import LocalBatch, local_batch
from gnnsys.pipeline.partition import part_nodes
from gnnsys.trainers.forward.common import (
    ForwardSettings,
    check_node_labels,
    class_logits,
    class_means,
    l2norm,
    make_layer,
    node_input,
    with_virtual_nodes,
)


class SFPipeTrainer:
    """One rank of the SF pipeline (``--trainer pipe --pipe-train sf``)."""

    def __init__(self, ctx: DistContext, dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor],
                 checkpoint: TrainerCheckpoint | None = None) -> None:
        self.ctx, self.cfg, self.dataset, self.split = ctx, cfg, dataset, split
        self.checkpoint = checkpoint
        self.comm, self.P, self.s, self.K = ctx.comm, ctx.world, ctx.rank, cfg.chunks
        dev = self.dev = ctx.device
        self.st: ForwardSettings = ForwardSettings.from_config(replace(cfg, forward_variant=None), "node")
        self.y = check_node_labels(dataset, split).to(dev)
        self.C = dataset.num_classes
        full = MiniBatch.full(dataset, dev)
        self.n = full.num_nodes
        x = l2norm(node_input(dataset, full))
        tr = split["train"].to(dev)
        self.aug = with_virtual_nodes(full, x, tr, self.y[tr], self.C, class_means(x, tr, self.y[tr], self.C),
                                      self.st.vn_edges)
        self.x0 = self.aug.x
        torch.manual_seed(cfg.seed)
        L = self.st.layers
        self.all_layers = [make_layer(self.st, x.size(1) if i == 0 else self.st.hidden, self.st.hidden).to(dev)
                           for i in range(L)]
        self.L = L
        self.ranges = stage_ranges(L, self.P)
        self.layers = self.ranges[self.s]
        self.a, self.b = self.layers.start, self.layers.stop
        self.first, self.last = self.s == 0, self.s == self.P - 1
        params = [p for i in self.layers for p in self.all_layers[i].parameters()]
        self.opt = torch.optim.Adam(params, lr=self.st.lr, weight_decay=self.st.weight_decay)
        self.pc = PipeCheckpoint(checkpoint, self.comm, "sf")
        self.part = self.pc.load()  # the checkpoint to resume from (None: a fresh start)
        # resuming reuses the checkpoint's partition: METIS need not give the same one twice
        assignment = (self.part["assignment"] if self.part is not None else
                 shared_assignment(self.comm, dataset.graph, self.K)).to(dev)
        self.parts_of = assignment
        self.assign = torch.cat([assignment, torch.full((self.C,), self.K, dtype=torch.long, device=dev)])
        chunks = [c.to(dev) for c in part_nodes(assignment.cpu(), self.K)]
        self.chunk_nodes = chunks + [torch.arange(self.n, self.n + self.C, device=dev)]
        tmask = torch.cat([train_mask(self.n, split, dev), torch.zeros(self.C, dtype=torch.bool, device=dev)])
        self.cb: list[LocalBatch] = [local_batch(self.aug, c, tmask) for c in self.chunk_nodes]
        self.stale_rows = [self.assign[b.node_ids] > i for i, b in enumerate(self.cb)]
        d = self.st.hidden
        self.H = {l: torch.zeros(self.n + self.C, d, device=dev) for l in range(self.a - 1, self.b - 1) if l >= 0}
        self._x0 = [self.x0[b.node_ids] for b in self.cb] if self.first else None
        self.busy = 0.0

    def _timed(self, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        self.busy += time.perf_counter() - t
        return out

    def _unit(self, i: int, l: int, stale: bool) -> torch.Tensor:
        cb = self.cb[i]
        if l == 0:
            x = self._x0[i]
        else:
            x = self.H[l - 1][cb.node_ids]  # rows of later chunks: last epoch's (stale) when ``stale``
        out = self.all_layers[l](x, cb)[: cb.num_targets]
        h = l2norm(out.detach())
        if l < self.b - 1:
            self.H[l][self.chunk_nodes[i]] = h
        self.outs[(i, l)] = out
        return h

    def train_epoch(self, stale: bool) -> float:
        """Forward every chunk (and the virtual-node chunk) through this stage, then one local
        step per layer; returns the summed local losses of this stage's layers."""
        comm, K1 = self.comm, self.K + 1
        for i in self.layers:
            self.all_layers[i].train()
        self.outs: dict[tuple[int, int], torch.Tensor] = {}
        d = self.st.hidden
        with comm.in_phase("train"):
            if stale:
                for i in range(K1):
                    if not self.first:
                        self.H[self.a - 1][self.chunk_nodes[i]] = comm.recv(
                            (self.chunk_nodes[i].numel(), d), self.s - 1, f"chunk {i} (forward)")
                    for l in self.layers:
                        h = self._timed(self._unit, i, l, True)
                    if not self.last:
                        comm.send(h, self.s + 1, f"chunk {i} (forward)")
            else:
                if not self.first:
                    for i in range(K1):
                        self.H[self.a - 1][self.chunk_nodes[i]] = comm.recv(
                            (self.chunk_nodes[i].numel(), d), self.s - 1, f"chunk {i} (forward)")
                hs = {}
                for l in self.layers:
                    for i in range(K1):
                        hs[i] = self._timed(self._unit, i, l, False)
                if not self.last:
                    for i in range(K1):
                        comm.send(hs[i], self.s + 1, f"chunk {i} (forward)")
        return self._timed(self._local_steps)

    def _local_steps(self) -> float:
        """SF's loss per layer (training nodes against the class virtual nodes), one step each."""
        self.opt.zero_grad()
        total = 0.0
        for l in self.layers:
            h_tr = torch.cat([self.outs[(i, l)][self.cb[i].target] for i in range(self.K)])
            y = torch.cat([self.y[self.cb[i].node_ids[self.cb[i].target]] for i in range(self.K)])
            loss = F.cross_entropy(class_logits(h_tr, self.outs[(self.K, l)], self.st), y)
            loss.backward()
            total += float(loss.detach())
        self.opt.step()
        self.outs = {}
        return total

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Exact full-graph forward; per-layer SF scores summed across stages; accuracy on the last."""
        comm, n, C, d = self.comm, self.n, self.C, self.st.hidden
        for i in self.layers:
            self.all_layers[i].eval()
        with comm.in_phase("eval"):
            if self.first:
                h, sc = self.x0, torch.zeros(n, C, device=self.dev)
            else:
                h = comm.recv((n + C, d), self.s - 1, "the evaluation forward")
                sc = comm.recv((n, C), self.s - 1, "the evaluation scores")
            for l in self.layers:
                out = self.all_layers[l](h, self.aug)
                sc = sc + torch.softmax(class_logits(out[:n], out[n:], self.st), -1)
                h = l2norm(out)
            if not self.last:
                comm.send(h, self.s + 1, "the evaluation forward")
                comm.send(sc, self.s + 1, "the evaluation scores")
                return {}
        sc, y = sc.cpu(), self.y.cpu()
        return {k: accuracy(sc[self.split[k]], y[self.split[k]]) for k in ("valid", "test") if k in self.split}

    def state_dict(self) -> dict[str, Any]:
        """This rank's training state: every layer (its own trained), optimizer, historical embeddings."""
        return {"layers": [m.state_dict() for m in self.all_layers], "opt": self.opt.state_dict(), "H": self.H}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (on a trainer built from the same config)."""
        for m, sd in zip(self.all_layers, state["layers"]):
            m.load_state_dict(sd)
        self.opt.load_state_dict(state["opt"])
        self.H = {int(k): v.to(self.dev) for k, v in state["H"].items()}

    def fit(self) -> dict[str, Any]:
        """Train ``cfg.epochs`` epochs; the run record (shaped like ``LayerPipeTrainer.fit``'s)."""
        c, comm = self.cfg, self.comm
        sel = Selector(c)
        busy, wall, sent, recv = [], [], [], []
        pc, part, start, stopped = self.pc, self.part, 1, False
        if part is not None:
            self.load_state_dict(part["trainer"])
            start, stopped = load_loop(part, sel, [busy, wall, sent, recv], comm)
        pc.restore_rng(part)
        t_start = time.perf_counter()
        for epoch in range(start, c.epochs + 1) if not stopped else ():
            stale = c.pipe_stale and epoch > c.pipe_warmup
            s0, r0 = comm.snapshot()
            self.busy = 0.0
            t0 = time.perf_counter()
            loss = self.train_epoch(stale)
            wall.append(time.perf_counter() - t0)
            busy.append(self.busy)
            s1, r1 = comm.snapshot()
            sent.append(s1.get("train", 0) - s0.get("train", 0))
            recv.append(r1.get("train", 0) - r0.get("train", 0))
            evaluated = epoch % c.eval_every == 0 or epoch == c.epochs
            scores = self.evaluate() if evaluated else {}
            msg = torch.tensor([loss, scores.get("valid", float("nan")), scores.get("test", float("nan"))],
                               dtype=torch.float64, device=self.dev)
            with comm.in_phase("control"):
                comm.broadcast(msg, self.P - 1, "the epoch's scores")
                lt = torch.tensor([loss], dtype=torch.float64, device=self.dev)
                comm.all_reduce(lt, "the local losses")
            rec = {"epoch": epoch, "loss": float(lt[0]) / self.L, "stale": stale, "seconds": wall[-1]}
            if evaluated:
                rec.update(valid=float(msg[1]), test=float(msg[2]))
            if not c.quiet and self.s == 0:
                print(f"epoch {epoch:4d} loss {rec['loss']:.4f}" + (f" val {rec['valid']:.4f} test {rec['test']:.4f}"
                      if evaluated else "") + f" {wall[-1]:.2f}s", flush=True)
            stop = sel.update(torch.nn.ModuleList(self.all_layers), rec, evaluated)
            pc.epoch_done(lambda e=epoch, st=stop: {"trainer": self.state_dict(), "assignment": self.parts_of.cpu(),
                                                     **loop_state(e, st, sel, [busy, wall, sent, recv], comm)},
                          finished=stop or epoch == c.epochs)
            if stop:
                break
        seconds = time.perf_counter() - t_start
        sel.restore(torch.nn.ModuleList(self.all_layers))
        per = gather_series(comm, [busy, wall, sent, recv], self.dev)
        e = len(wall)
        widths = [self.x0.size(1)] + [self.st.hidden] * self.L
        return {
            "metric": "acc", "best_epoch": sel.best_epoch, "val": sel.best_val, "test": sel.test_at_best,
            "epochs": e, "seconds": seconds, "history": sel.history,
            "pipe": {
                "parallel": "layer", "train": "sf", "stages": self.P, "chunks": self.K,
                "stage_layers": [[r.start, r.stop] for r in self.ranges],
                "chunk_sizes": [int(x.numel()) for x in self.chunk_nodes[:-1]],
                "chunk_halo": [int(b.num_halo) for b in self.cb[:-1]], "virtual_nodes": self.C,
                "sf_extra_bytes": (self.P - 1) * self.C * self.st.hidden * 4,
                "widths": widths, "schedule": "forward only (GPipe forward half)",
                "bubble_ideal": gpipe_bubble(self.P, self.K + 1),
                "bubble": bubble([t[0].tolist() for t in per], [t[1].tolist() for t in per]),
                "epoch_seconds": [max(float(t[1][j]) for t in per) for j in range(e)],
                "train_bytes": [int(sum(float(t[2][j]) for t in per)) for j in range(e)],
                "bytes_rank0": comm.counts(),
                "stale_epochs": sum(1 for r in sel.history if r.get("stale")),
                "smoothing": 0.0, "warmup": c.pipe_warmup,
            },
        }
