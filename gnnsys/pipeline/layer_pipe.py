"""GNNPipe: layer-parallel, chunk-pipelined full-graph training (Chen, Chen, Qian 2023).

Rank ``s`` of ``P`` owns a run of consecutive layers ``[a, b)`` of one ``GNNStack`` over the
whole graph. The graph is cut by METIS into ``K`` chunks that flow through the stages like
micro-batches. The work of a rank is a grid of *units* ``(chunk i, layer l)``: the layer's
rows for chunk ``i``, computed on the chunk's ``LocalBatch`` (its nodes and halo) from the
rank's buffer ``H[l-1]`` of layer ``l-1``'s output for all ``N`` nodes.

Staleness. A stage runs chunk ``i`` through all its layers before chunk ``i+1`` (that is what
lets stage ``s+1`` start on chunk ``i`` while stage ``s`` computes chunk ``i+1``). When unit
``(i, l)`` runs, layer ``l-1`` has this epoch's rows for chunks ``0..i``; the rows of chunks
``> i`` still hold the previous epoch's values: the *historical embeddings*, one buffer per
layer, stale by exactly one epoch. They are constants (no gradient flows into them), as in
GNNAutoScale/PipeGCN. ``pipe_smoothing = γ`` reads them from an exponential average
``S ← γ S + (1-γ) H`` instead (PipeGCN's smoothing). Exact mode (``pipe_stale=False``, and
the ``pipe_warmup`` first epochs) computes layer by layer over all chunks instead: every read
is fresh and the run equals single-process training, but stage ``s+1`` waits for all of
stage ``s``.

Backward. Unit gradients are accumulated into per-layer gradient buffers ``G[l]``; a unit's
input gradient goes to the rows of chunks it read fresh. Chunk ``i``'s layer-``l`` rows are read
fresh by the units ``(j, l+1)`` with ``j >= i``, so running the units in reverse chunk order
(``K-1 .. 0``) completes each chunk's gradient just before it is needed, and a stage sends the
gradient of chunk ``i``'s input to stage ``s-1`` right after finishing chunk ``i``: the backward is
pipelined in reverse chunk order. That is GPipe's schedule (all forwards, then all backwards,
micro-batches in reverse); 1F1B cannot apply here, since the first backward (chunk ``K-1``)
needs every chunk's forward. Its ideal bubble is ``(P-1)/(K+P-1)``; the measured one is
``1 - Σ busy / (P · wall)`` per epoch.

Communication per training epoch: each stage boundary carries every chunk's rows once
forward and their gradients once backward, ``2 (P-1) N d`` floats, whatever the depth.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

from gnnsys.api import initialize, model_for
from gnnsys.batch import MiniBatch
from gnnsys.checkpoint import TrainerCheckpoint
from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.pipeline.ckpt import PipeCheckpoint, gather_stack_state, load_loop, loop_state
from gnnsys.pipeline.common import (
    Selector,
    bubble,
    clip_global,
    eval_scores,
    gpipe_bubble,
    layer_widths,
    owned_parts,
    shared_assignment,
    stage_ranges,
    train_mask,
)
from gnnsys.pipeline.launch import DistContext
from gnnsys.pipeline.local import LocalBatch, local_batch
from gnnsys.pipeline.partition import part_nodes


class LayerPipeTrainer:
    """One rank of a GNNPipe run: builds the model (identically on every rank, from the seed),
    keeps and trains only its stage's layers. ``fit()`` returns the run record (identical on
    every rank, except for per-rank timings gathered at the end)."""

    def __init__(self, ctx: DistContext, dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor],
                 checkpoint: TrainerCheckpoint | None = None) -> None:
        self.ctx, self.cfg, self.dataset, self.split = ctx, cfg, dataset, split
        self.checkpoint = checkpoint
        self.comm = ctx.comm
        self.P, self.s = ctx.world, ctx.rank
        self.K = cfg.chunks
        dev = self.dev = ctx.device
        torch.manual_seed(cfg.seed)
        self.model = model_for(dataset, cfg)
        initialize(self.model, dataset, cfg)
        self.model.to(dev)
        self.L = self.model.num_layers
        self.ranges = stage_ranges(self.L, self.P)
        self.layers = self.ranges[self.s]
        self.a, self.b = self.layers.start, self.layers.stop
        self.first, self.last = self.s == 0, self.s == self.P - 1
        self.full = MiniBatch.full(dataset, dev)
        self.n = self.full.num_nodes
        self.widths = layer_widths(self.model, self.full)
        self.pc = PipeCheckpoint(checkpoint, self.comm, "layer")
        self.part = self.pc.load()  # the checkpoint to resume from (None: a fresh start)
        # resuming reuses the checkpoint's partition: METIS need not give the same one twice
        self.assignment = (self.part["assignment"] if self.part is not None else
                 shared_assignment(self.comm, dataset.graph, self.K)).to(dev)
        self.parts_of = self.assignment
        self.chunk_nodes = [c.to(dev) for c in part_nodes(self.assignment.cpu(), self.K)]
        tmask = train_mask(self.n, split, dev)
        self.n_train = int(tmask.sum())
        self.labels = dataset.labels.to(dev).long()
        self.cb: list[LocalBatch] = [local_batch(self.full, c, tmask) for c in self.chunk_nodes]
        # rows a unit of chunk i reads from last epoch's buffer: halo nodes in later chunks
        self.stale_rows = [self.assignment[b.node_ids] > i for i, b in enumerate(self.cb)]
        self.parts = owned_parts(self.model, self.layers, self.first, self.last)
        params = [p for ps in self.parts.values() for p in ps]
        self.opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if params else None
        self.sched = (torch.optim.lr_scheduler.StepLR(self.opt, cfg.lr_decay_step, cfg.lr_decay)
                      if cfg.lr_decay_step and self.opt is not None else None)
        self.encoder_trains = self.first and any(p.requires_grad for p in self.model.encoder.parameters())
        # H[l]: output of layer l for all nodes, kept for l in [a-1, b-1) (the inputs this stage reads)
        self.H = {l: torch.zeros(self.n, self.widths[l + 1], device=dev) for l in range(self.a - 1, self.b - 1)
                  if l >= 0}
        self.S: dict[int, torch.Tensor] | None = None  # smoothed history (pipe_smoothing > 0)
        self._x0: list[torch.Tensor] | None = None
        self.busy = 0.0

    # ------------------------------------------------------------------ units
    def _timed(self, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        self.busy += time.perf_counter() - t
        return out

    def _input(self, i: int, l: int, stale: bool, enc: torch.Tensor | None) -> torch.Tensor:
        cb = self.cb[i]
        if l == 0:
            if enc is not None:  # a learned encoder (embedding table): its rows need a gradient
                return enc.detach()[cb.node_ids].requires_grad_(True)
            if self._x0 is None:  # fixed features: gather each chunk's rows once
                x = self.model.encode(self.full)
                self._x0 = [x[b.node_ids] for b in self.cb]
            return self._x0[i]
        x = self.H[l - 1][cb.node_ids]
        if stale and self.S is not None:
            m = self.stale_rows[i]
            x[m] = self.S[l - 1][cb.node_ids[m]]
        return x.requires_grad_(True)

    def _forward_unit(self, i: int, l: int, stale: bool, enc: torch.Tensor | None) -> torch.Tensor:
        cb = self.cb[i]
        x = self._input(i, l, stale, enc)
        out = self.model.forward_layer(l, x, cb)[: cb.num_targets]
        if l < self.b - 1:
            self.H[l][self.chunk_nodes[i]] = out.detach()
        if l == self.L - 1:
            logits = self.model.head(out, cb)
            tgt = cb.target
            loss = F.cross_entropy(logits[tgt], self.labels[cb.node_ids[tgt]], reduction="sum") / self.n_train
            self.saved[(i, l)] = (x, loss, None)
            self.loss_total += float(loss.detach())
        else:
            self.saved[(i, l)] = (x, out, None)
        return out

    def _backward_unit(self, i: int, l: int, stale: bool, grad_out: torch.Tensor | None) -> None:
        x, out, _ = self.saved.pop((i, l))
        if l == self.L - 1:
            out.backward()
        else:
            g = grad_out if l == self.b - 1 else self.G[l][self.chunk_nodes[i]]
            torch.autograd.backward(out, g)
        if x.grad is None:
            return
        gx = x.grad
        ids = self.cb[i].node_ids
        if stale and l > 0:  # historical rows are constants: their gradient is dropped (layer 0's input is fresh)
            keep = ~self.stale_rows[i]
            gx, ids = gx[keep], ids[keep]
        self.G[l - 1].index_add_(0, ids, gx)

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, stale: bool) -> float:
        """One training epoch (forward and backward pipelined over the chunks); returns the loss."""
        c, comm, K = self.cfg, self.comm, self.K
        self.model.train()
        self.saved: dict[tuple[int, int], Any] = {}
        self.loss_total = 0.0
        self.G = {l: torch.zeros(self.n, self.widths[l + 1], device=self.dev) for l in range(self.a - 1, self.b - 1)}
        if self.opt is not None:
            self.opt.zero_grad()
        enc = self._timed(self.model.encode, self.full) if self.encoder_trains else None
        d_in, d_out = self.widths[self.a], self.widths[self.b]
        layers = list(self.layers)
        with comm.in_phase("train"):
            # forward: chunks in order
            if stale:
                for i in range(K):
                    if not self.first:
                        self.H[self.a - 1][self.chunk_nodes[i]] = comm.recv(
                            (self.chunk_nodes[i].numel(), d_in), self.s - 1, f"chunk {i} (forward)")
                    for l in layers:
                        out = self._timed(self._forward_unit, i, l, True, enc)
                    self._maybe_fault(i)
                    if not self.last:
                        comm.send(out, self.s + 1, f"chunk {i} (forward)")
            else:
                if not self.first:
                    for i in range(K):
                        self.H[self.a - 1][self.chunk_nodes[i]] = comm.recv(
                            (self.chunk_nodes[i].numel(), d_in), self.s - 1, f"chunk {i} (forward)")
                outs = {}
                for l in layers:
                    for i in range(K):
                        outs[i] = self._timed(self._forward_unit, i, l, False, enc)
                        self._maybe_fault(i)
                if not self.last:
                    for i in range(K):
                        comm.send(outs[i], self.s + 1, f"chunk {i} (forward)")
                del outs
            # backward: chunks in reverse order
            if stale:
                for i in reversed(range(K)):
                    g = None if self.last else comm.recv((self.chunk_nodes[i].numel(), d_out), self.s + 1,
                                                         f"the gradient of chunk {i} (backward)")
                    for l in reversed(layers):
                        self._timed(self._backward_unit, i, l, True, g)
                    if not self.first:
                        comm.send(self.G[self.a - 1][self.chunk_nodes[i]], self.s - 1,
                                  f"the gradient of chunk {i} (backward)")
            else:
                gs = {}
                if not self.last:
                    for i in reversed(range(K)):
                        gs[i] = comm.recv((self.chunk_nodes[i].numel(), d_out), self.s + 1,
                                          f"the gradient of chunk {i} (backward)")
                for l in reversed(layers):
                    for i in reversed(range(K)):
                        self._timed(self._backward_unit, i, l, False, gs.get(i))
                if not self.first:
                    for i in reversed(range(K)):
                        comm.send(self.G[self.a - 1][self.chunk_nodes[i]], self.s - 1,
                                  f"the gradient of chunk {i} (backward)")
        if enc is not None:
            self._timed(torch.autograd.backward, enc, self.G[-1])
        if c.grad_clip:
            clip_global(comm, self.parts, c.grad_clip)
        if self.opt is not None:
            self._timed(self.opt.step)
        if self.sched is not None:
            self.sched.step()
        self.G = {}
        if c.pipe_smoothing > 0:
            self._smooth()
        return self.loss_total

    def _maybe_fault(self, chunk: int) -> None:
        """Testing hook: ``cfg.extra["pipe_fault"] = {"rank": r, "epoch": e}`` makes rank ``r``
        SIGKILL itself in epoch ``e`` after its forward of chunk 0 (mid-epoch, mid-pipeline);
        with ``"signal": "STOP"`` it freezes instead (a hung rank: the others time out)."""
        f = self.cfg.extra.get("pipe_fault")
        if f and f.get("rank") == self.s and f.get("epoch") == self.epoch and chunk == 0:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGSTOP if f.get("signal") == "STOP" else signal.SIGKILL)

    def _smooth(self) -> None:
        g = self.cfg.pipe_smoothing
        if self.S is None:
            self.S = {l: h.clone() for l, h in self.H.items()}
        else:
            for l, h in self.H.items():
                self.S[l].mul_(g).add_(h, alpha=1.0 - g)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Exact full-graph forward through the stages (eval mode); scores on the last rank."""
        comm = self.comm
        self.model.eval()
        with comm.in_phase("eval"):
            h = self.model.encode(self.full) if self.first else comm.recv(
                (self.n, self.widths[self.a]), self.s - 1, "the evaluation forward")
            for l in self.layers:
                h = self.model.forward_layer(l, h, self.full)
            if not self.last:
                comm.send(h, self.s + 1, "the evaluation forward")
                return {}
        return eval_scores(self.model.head(h, self.full), self.dataset.labels, self.split)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """This rank's training state: model, optimizer, LR schedule, historical embeddings."""
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict() if self.opt is not None else None,
                "sched": self.sched.state_dict() if self.sched is not None else None, "H": self.H, "S": self.S}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (on a trainer built from the same config)."""
        self.model.load_state_dict(state["model"])
        if self.opt is not None:
            self.opt.load_state_dict(state["opt"])
        if self.sched is not None:
            self.sched.load_state_dict(state["sched"])
        self.H = {int(k): v.to(self.dev) for k, v in state["H"].items()}
        self.S = None if state["S"] is None else {int(k): v.to(self.dev) for k, v in state["S"].items()}

    # ------------------------------------------------------------------ fit
    def fit(self) -> dict[str, Any]:
        """Train ``cfg.epochs`` epochs (patience as ``BackpropTrainer``); the run record."""
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
            self.epoch = epoch
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
            msg = torch.tensor([loss, scores.get("valid", float("nan")), scores.get("test", float("nan")),
                                scores.get("valid_loss", float("nan"))], dtype=torch.float64, device=self.dev)
            with comm.in_phase("control"):
                comm.broadcast(msg, self.P - 1, "the epoch's loss and scores")
            rec = {"epoch": epoch, "loss": float(msg[0]), "stale": stale, "seconds": wall[-1]}
            if evaluated:
                rec.update(valid=float(msg[1]), test=float(msg[2]), valid_loss=float(msg[3]))
            if not c.quiet and self.s == 0:
                print(f"epoch {epoch:4d} loss {rec['loss']:.4f}" + (f" val {rec['valid']:.4f} test {rec['test']:.4f}"
                      if evaluated else "") + f" {'stale' if stale else 'exact'} {wall[-1]:.2f}s", flush=True)
            stop = sel.update(self.model, rec, evaluated)
            pc.epoch_done(lambda e=epoch, st=stop: {"trainer": self.state_dict(), "assignment": self.parts_of.cpu(),
                                                     **loop_state(e, st, sel, [busy, wall, sent, recv], comm)},
                          finished=stop or epoch == c.epochs)
            if stop:
                break
        seconds = time.perf_counter() - t_start
        sel.restore(self.model)
        out = self._record(sel, busy, wall, sent, recv, seconds)
        if c.save_model:
            state = gather_stack_state(comm, self.model, self.ranges)
            if state is not None:
                out["model_state"] = state
        return out

    def _record(self, sel: Selector, busy: list[float], wall: list[float], sent: list[int], recv: list[int],
                seconds: float) -> dict[str, Any]:
        comm = self.comm
        e = len(wall)
        per = gather_series(comm, [busy, wall, sent, recv], self.dev)
        b_meas = bubble([t[0].tolist() for t in per], [t[1].tolist() for t in per])
        epoch_s = [max(float(t[1][j]) for t in per) for j in range(e)]
        train_bytes = [int(sum(float(t[2][j]) for t in per)) for j in range(e)]
        if not self.cfg.quiet and self.s == 0 and e:
            print(f"GNNPipe: {self.P} stages x {self.K} chunks, GPipe schedule: bubble {sum(b_meas) / e:.2f} "
                  f"measured (ideal {gpipe_bubble(self.P, self.K):.2f}), {train_bytes[-1]:,} bytes per training "
                  f"epoch", flush=True)
        return {
            "metric": "acc", "best_epoch": sel.best_epoch, "val": sel.best_val, "test": sel.test_at_best,
            "epochs": e, "seconds": seconds, "history": sel.history,
            "pipe": {
                "parallel": "layer", "train": "backprop", "stages": self.P, "chunks": self.K,
                "stage_layers": [[r.start, r.stop] for r in self.ranges],
                "chunk_sizes": [int(x.numel()) for x in self.chunk_nodes],
                "chunk_halo": [int(b.num_halo) for b in self.cb],
                "widths": self.widths, "schedule": "gpipe",
                "bubble_ideal": gpipe_bubble(self.P, self.K), "bubble": b_meas,
                "epoch_seconds": epoch_s, "train_bytes": train_bytes,
                "train_bytes_per_rank": [[int(x) for x in t[2].tolist()] for t in per],
                "recv_bytes_per_rank": [[int(x) for x in t[3].tolist()] for t in per],
                "bytes_rank0": comm.counts(),
                "stale_epochs": sum(1 for r in sel.history if r.get("stale")),
                "smoothing": self.cfg.pipe_smoothing, "warmup": self.cfg.pipe_warmup,
                "grad_clip": self.cfg.grad_clip,
            },
        }


def gather_series(comm: Any, series: list[list[float]], device: torch.device) -> list[torch.Tensor]:
    """Every rank's per-epoch series (equal lengths on all ranks), one CPU ``float64`` matrix
    per rank (row i = ``series[i]``), gathered in the ``report`` phase."""
    mine = torch.tensor(series, dtype=torch.float64, device=device)
    out = [mine]
    if comm.world > 1:
        out = [torch.zeros_like(mine) for _ in range(comm.world)]
        with comm.in_phase("report"):
            gather_all(comm, mine, out)
    return [t.cpu() for t in out]


def gather_all(comm: Any, mine: torch.Tensor, out: list[torch.Tensor]) -> None:
    """All-gather equal-shaped tensors through the counted broadcast (one per rank)."""
    for r in range(comm.world):
        buf = mine.clone() if r == comm.rank else torch.zeros_like(mine)
        comm.broadcast(buf, r, f"rank {r}'s timings")
        out[r] = buf
