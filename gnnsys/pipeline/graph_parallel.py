"""Graph-parallel baseline: each rank a METIS partition of the nodes and all the layers.

At every layer ``l >= 1`` a rank sends the rows of its nodes that other partitions read (their
halo) and receives its own halo rows, then computes layer ``l`` for its nodes on its
``LocalBatch`` (nodes, then halo); backward sends the halo rows' gradients back to their
owners (the DistDGL / PipeGCN-without-staleness scheme). The exchange is an autograd
function, so ``loss.backward()`` runs the backward exchanges in reverse layer order on every
rank. Layer 0 reads input features, which never change: each rank reads its halo's rows once
at setup (not per epoch). The weights are replicated; their gradients are summed with one
all-reduce per step. Exchanges are blocking send/recv pairs in round-robin rounds
(``pair_rounds``), never several outstanding requests between two ranks.

Per training epoch it moves ``2 Σ_{l=1}^{L-1} d_l · Σ_p |halo_p|`` floats plus the all-reduce:
the volume grows with depth, which is what GNNPipe's layer split avoids.
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
from gnnsys.pipeline.ckpt import PipeCheckpoint, load_loop, loop_state
from gnnsys.pipeline.comm import Comm, pair_rounds
from gnnsys.pipeline.common import Selector, bubble, layer_widths, shared_assignment, train_mask
from gnnsys.pipeline.launch import DistContext
from gnnsys.pipeline.layer_pipe import gather_series
from gnnsys.pipeline.local import LocalBatch, local_batch
from gnnsys.pipeline.partition import halo_sizes, part_nodes
from gnnsys.trainers.backprop import clip_parts


class HaloPlan:
    """Who sends which rows to whom: ``send_idx[q]`` (local ids of own nodes that rank ``q``
    reads) and ``recv_pos[q]`` (positions in this rank's halo of the rows owned by ``q``), both
    in ascending global id on both sides."""

    def __init__(self, comm: Comm, assignment: torch.Tensor, edge_index: torch.Tensor, own: torch.Tensor,
                 halo: torch.Tensor) -> None:
        self.comm = comm
        p, world = comm.rank, comm.world
        n = assignment.numel()
        src, dst = edge_index[0], edge_index[1]
        cut = assignment[src] != assignment[dst]
        key = torch.unique(assignment[dst][cut] * n + src[cut])  # (reader part, halo node), sorted
        reader, node = key // n, key % n
        self.send_idx: dict[int, torch.Tensor] = {}
        self.recv_pos: dict[int, torch.Tensor] = {}
        owner_of_halo = assignment[halo]
        for q in range(world):
            if q == p:
                continue
            mine = node[(reader == q) & (assignment[node] == p)]  # my nodes that q reads
            self.send_idx[q] = torch.searchsorted(own, mine)
            self.recv_pos[q] = (owner_of_halo == q).nonzero().view(-1)
        self.rounds = pair_rounds(world)
        self.n_own, self.n_halo = own.numel(), halo.numel()

    def _peers(self):
        for rnd in self.rounds:
            for a, b in rnd:
                if self.comm.rank in (a, b):
                    yield b if self.comm.rank == a else a

    def _swap(self, peer: int, out: torch.Tensor, rows_in: int, d: int, what: str) -> torch.Tensor | None:
        comm = self.comm
        if out.size(0) == 0 and rows_in == 0:
            return None
        if out.size(0) == 0:
            return comm.recv((rows_in, d), peer, what, out.dtype)
        if rows_in == 0:
            comm.send(out, peer, what)
            return None
        return comm.exchange(peer, out, (rows_in, d), what)

    def forward_exchange(self, h_own: torch.Tensor, layer: int) -> torch.Tensor:
        d = h_own.size(1)
        halo = h_own.new_empty(self.n_halo, d)
        for q in self._peers():
            got = self._swap(q, h_own[self.send_idx[q]], self.recv_pos[q].numel(), d, f"halo rows of layer {layer}")
            if got is not None:
                halo[self.recv_pos[q]] = got
        return halo

    def backward_exchange(self, g_halo: torch.Tensor, layer: int) -> torch.Tensor:
        d = g_halo.size(1)
        g_own = g_halo.new_zeros(self.n_own, d)
        for q in self._peers():
            got = self._swap(q, g_halo[self.recv_pos[q]].contiguous(), self.send_idx[q].numel(), d,
                             f"halo gradients of layer {layer}")
            if got is not None:
                g_own.index_add_(0, self.send_idx[q], got)
        return g_own


class _HaloExchange(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h_own: torch.Tensor, plan: HaloPlan, layer: int) -> torch.Tensor:  # type: ignore[override]
        ctx.plan, ctx.layer = plan, layer
        return plan.forward_exchange(h_own, layer)

    @staticmethod
    def backward(ctx, g_halo: torch.Tensor):  # type: ignore[override]
        return ctx.plan.backward_exchange(g_halo.contiguous(), ctx.layer), None, None


class GraphParallelTrainer:
    """One rank of the graph-parallel baseline (all layers, one partition, replicated weights)."""

    def __init__(self, ctx: DistContext, dataset: Dataset, cfg: TrainConfig, split: dict[str, torch.Tensor],
                 checkpoint: TrainerCheckpoint | None = None) -> None:
        self.ctx, self.cfg, self.dataset, self.split = ctx, cfg, dataset, split
        self.checkpoint = checkpoint
        self.comm, self.P, self.p = ctx.comm, ctx.world, ctx.rank
        dev = self.dev = ctx.device
        torch.manual_seed(cfg.seed)
        self.model = model_for(dataset, cfg)
        initialize(self.model, dataset, cfg)
        self.model.to(dev)
        self.L = self.model.num_layers
        self.full = MiniBatch.full(dataset, dev)
        self.n = self.full.num_nodes
        self.widths = layer_widths(self.model, self.full)
        self.pc = PipeCheckpoint(checkpoint, self.comm, "graph")
        self.part = self.pc.load()  # the checkpoint to resume from (None: a fresh start)
        # resuming reuses the checkpoint's partition: METIS need not give the same one twice
        self.assignment = (self.part["assignment"] if self.part is not None else
                 shared_assignment(self.comm, dataset.graph, self.P)).to(dev)
        self.parts_of = self.assignment
        self.parts = [c.to(dev) for c in part_nodes(self.assignment.cpu(), self.P)]
        own = self.parts[self.p]
        tmask = train_mask(self.n, split, dev)
        self.n_train = int(tmask.sum())
        self.lb: LocalBatch = local_batch(self.full, own, tmask)
        self.n_own = own.numel()
        halo = self.lb.node_ids[self.n_own:]
        self.plan = HaloPlan(self.comm, self.assignment, self.full.edge_index, own, halo)
        self.halo_sizes = halo_sizes(dataset.graph, self.assignment.cpu(), self.P)
        self.labels = dataset.labels.to(dev).long()
        # layer-0 input: features of own and halo nodes, read once (constant)
        self.in_batch = LocalBatch(node_ids=self.lb.node_ids, edge_index=self.lb.edge_index,
                                   x=None if self.full.x is None else self.full.x[self.lb.node_ids],
                                   num_targets=self.n_own)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, cfg.lr_decay_step, cfg.lr_decay) \
            if cfg.lr_decay_step else None

    def _forward(self) -> torch.Tensor:
        lb = self.lb
        x = self.model.encode(self.in_batch)
        h = None
        for l in range(self.L):
            if l > 0:
                x = torch.cat([h, _HaloExchange.apply(h, self.plan, l)])
            h = self.model.forward_layer(l, x, lb)[: self.n_own]
        return self.model.head(h, lb)

    def _sync_grads(self) -> None:
        params = list(self.model.parameters())
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.comm.all_reduce(flat, "the weight gradients")
        off = 0
        for p in params:
            k = p.numel()
            p.grad = flat[off:off + k].view_as(p).clone()
            off += k

    def train_epoch(self) -> tuple[float, float]:
        """One full-graph step: forward with halo exchanges, backward, gradient all-reduce,
        update. Returns the loss (summed over ranks) and the step's seconds."""
        c, comm = self.cfg, self.comm
        self.model.train()
        self.opt.zero_grad()
        t0 = time.perf_counter()
        with comm.in_phase("train"):
            logits = self._forward()
            tgt = self.lb.target
            loss = F.cross_entropy(logits[tgt], self.labels[self.lb.node_ids[tgt]], reduction="sum") / self.n_train
            loss.backward()
            self._sync_grads()
        if c.grad_clip:
            clip_parts(self.model, c.grad_clip)
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        lt = torch.tensor([float(loss.detach())], dtype=torch.float64, device=self.dev)
        with comm.in_phase("control"):
            comm.all_reduce(lt, "the loss")
        return float(lt[0]), time.perf_counter() - t0

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Valid/test accuracy and validation loss over all partitions (counts all-reduced)."""
        self.model.eval()
        with self.comm.in_phase("eval"):
            logits = self._forward()
        own = self.lb.node_ids[: self.n_own]
        ys = self.labels[own]
        stats = []
        for k in ("valid", "test"):
            m = torch.zeros(self.n, dtype=torch.bool, device=self.dev)
            m[self.split[k].to(self.dev)] = True
            sel = m[own]
            correct = (logits[sel].argmax(-1) == ys[sel]).sum()
            ce = F.cross_entropy(logits[sel], ys[sel], reduction="sum") if k == "valid" else torch.zeros(())
            stats += [float(correct), float(sel.sum()), float(ce)]
        t = torch.tensor(stats, dtype=torch.float64, device=self.dev)
        with self.comm.in_phase("control"):
            self.comm.all_reduce(t, "the evaluation counts")
        return {"valid": float(t[0] / t[1]), "test": float(t[3] / t[4]), "valid_loss": float(t[2] / t[1])}

    def state_dict(self) -> dict[str, Any]:
        """This rank's training state: model (replicated), optimizer, LR schedule."""
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict() if self.sched is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (on a trainer built from the same config)."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.sched is not None:
            self.sched.load_state_dict(state["sched"])

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
            s0, r0 = comm.snapshot()
            loss, w = self.train_epoch()
            s1, r1 = comm.snapshot()
            wall.append(w)
            busy.append(w)  # no pipeline: every rank works the whole step (waiting included)
            sent.append(s1.get("train", 0) - s0.get("train", 0))
            recv.append(r1.get("train", 0) - r0.get("train", 0))
            evaluated = epoch % c.eval_every == 0 or epoch == c.epochs
            rec: dict[str, Any] = {"epoch": epoch, "loss": loss, "seconds": w}
            if evaluated:
                rec.update(self.evaluate())
            if not c.quiet and self.p == 0:
                print(f"epoch {epoch:4d} loss {loss:.4f}" + (f" val {rec['valid']:.4f} test {rec['test']:.4f}"
                      if evaluated else "") + f" {w:.2f}s", flush=True)
            stop = sel.update(self.model, rec, evaluated)
            pc.epoch_done(lambda e=epoch, st=stop: {"trainer": self.state_dict(), "assignment": self.parts_of.cpu(),
                                                     **loop_state(e, st, sel, [busy, wall, sent, recv], comm)},
                          finished=stop or epoch == c.epochs)
            if stop:
                break
        seconds = time.perf_counter() - t_start
        sel.restore(self.model)
        per = gather_series(comm, [busy, wall, sent, recv], self.dev)
        e = len(wall)
        out = {
            "metric": "acc", "best_epoch": sel.best_epoch, "val": sel.best_val, "test": sel.test_at_best,
            "epochs": e, "seconds": seconds, "history": sel.history,
            "pipe": {
                "parallel": "graph", "train": "backprop", "stages": self.P, "chunks": self.P,
                "part_sizes": [int(x.numel()) for x in self.parts], "halo": self.halo_sizes,
                "widths": self.widths, "schedule": "none",
                "bubble": bubble([t[0].tolist() for t in per], [t[1].tolist() for t in per]),
                "epoch_seconds": [max(float(t[1][j]) for t in per) for j in range(e)],
                "train_bytes": [int(sum(float(t[2][j]) for t in per)) for j in range(e)],
                "train_bytes_per_rank": [[int(x) for x in t[2].tolist()] for t in per],
                "recv_bytes_per_rank": [[int(x) for x in t[3].tolist()] for t in per],
                "bytes_rank0": comm.counts(),
                "num_params": sum(p.numel() for p in self.model.parameters()),
                "grad_clip": c.grad_clip,
            },
        }
        if c.save_model and self.p == 0:  # weights are replicated: rank 0 holds the whole model
            out["model_state"] = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return out
