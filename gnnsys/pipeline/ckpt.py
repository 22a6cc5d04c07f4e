"""Checkpoints and saved models of a GNNPipe run (``--trainer pipe``), written by every rank.

A pipeline's state is spread over its ranks (each holds its own layers, optimizer and
historical embeddings), so a checkpoint is a coordinated cut at an epoch boundary:

1. every rank writes its part to ``DIR/pipe-SSSSSSSS/rank-R.pt`` (``S`` the run's epoch count)
   through ``gnnsys.paths.atomic_write_bytes`` (temporary name, fsync, rename);
2. a barrier (a one-float all-reduce, counted under the ``checkpoint`` phase);
3. rank 0 writes the manifest ``DIR/ckpt-SSSSSSSS.pt``, an ordinary ``gnnsys.checkpoint``
   file whose ``trainer`` entry names the folder and the rank count. The manifest makes the
   checkpoint complete: a crash before its rename leaves the previous checkpoint the newest
   whole one, and the usual checks (the fingerprint of the config, which includes
   ``--stages`` and ``--chunks``; the fallback past a torn newest file) apply unchanged.
   Rank 0 then removes the ``pipe-*`` folders that no kept manifest names.

A rank's part holds the trainer's own state (its layers, optimizer and LR schedule, the
historical embeddings and their smoothed copy), the model-selection state (best score and
weights, patience, the per-epoch history), the per-epoch timings and byte counts, the
communication counters, the epoch, whether the run had stopped, and the rank's RNG states.

Saved models: ``gather_stack_state`` collects every stage's layers on rank 0, which then holds
the whole ``GNNStack`` as single-process training would.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gnnsys.checkpoint import TrainerCheckpoint, rng_state, set_rng_state
from gnnsys.errors import CheckpointError
from gnnsys.paths import atomic_write_bytes, torch_bytes
from gnnsys.pipeline.comm import Comm

RANK_FORMAT = "gnnsys-pipe-rank"
_DIR = re.compile(r"^pipe-(\d{8,})$")


class PipeCheckpoint:
    """One rank's view of the run's checkpoints (``checkpoint``: ``None`` when the run keeps
    none; then every method does nothing)."""

    def __init__(self, checkpoint: TrainerCheckpoint | None, comm: Comm, mode: str) -> None:
        self.ck, self.comm, self.mode = checkpoint, comm, mode

    @property
    def active(self) -> bool:
        """Whether the run writes checkpoints."""
        return self.ck is not None

    def load(self) -> dict[str, Any] | None:
        """This rank's part of the checkpoint the run resumes from (``None``: a fresh start).
        ``CheckpointError`` when the part is missing, unreadable or from another checkpoint."""
        if self.ck is None or self.ck.state is None:
            return None
        meta = self.ck.state.get("pipe")
        if not isinstance(meta, dict):
            raise CheckpointError(f"the checkpoint in {self.ck.run.dir} was not written by --trainer pipe")
        if int(meta["ranks"]) != self.comm.world or meta.get("mode") != self.mode:
            raise CheckpointError(f"the checkpoint in {self.ck.run.dir} holds {meta['ranks']} ranks of a "
                                  f"{meta.get('mode')!r} pipeline; this run has {self.comm.world} of a "
                                  f"{self.mode!r} one")
        path = self.ck.run.dir / meta["dir"] / f"rank-{self.comm.rank}.pt"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                part = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - missing, torn or foreign: several error types
            raise CheckpointError(f"{path}: rank {self.comm.rank}'s part of the checkpoint cannot be read back "
                                  f"({type(e).__name__}: {str(e)[:160]}); remove {self.ck.run.dir} to start "
                                  "fresh") from e
        if (not isinstance(part, dict) or part.get("format") != RANK_FORMAT or part.get("step") != meta["step"]
                or part.get("fingerprint") != self.ck.run.fingerprint):
            raise CheckpointError(f"{path} does not belong to the checkpoint {meta['dir']} of this run; remove "
                                  f"{self.ck.run.dir} to start fresh")
        return part

    def restore_rng(self, part: dict[str, Any] | None) -> None:
        """Set this rank's generators to what they were when ``part`` was written."""
        if part is not None:
            set_rng_state(part["rng"])

    def epoch_done(self, collect: Callable[[], dict[str, Any]], finished: bool) -> None:
        """Count one epoch; every ``every`` epochs and when ``finished`` write the checkpoint
        (this rank's part, barrier, then rank 0's manifest). Every rank must call it."""
        if self.ck is None:
            return
        run = self.ck.run
        run.step += 1
        if not (finished or run.step % run.every == 0):
            return
        name = f"pipe-{run.step:08d}"
        folder = run.dir / name
        folder.mkdir(parents=True, exist_ok=True)
        part = {"format": RANK_FORMAT, "step": run.step, "rank": self.comm.rank, "fingerprint": run.fingerprint,
                **collect(), "rng": rng_state()}
        atomic_write_bytes(folder / f"rank-{self.comm.rank}.pt", torch_bytes(part), "--checkpoint-dir")
        with self.comm.in_phase("checkpoint"):
            self.comm.all_reduce(torch.ones(1, device=self.comm.device), "the checkpoint barrier")
        if self.comm.rank == 0:
            run.save(self.ck.fold, {"pipe": {"dir": name, "ranks": self.comm.world, "step": run.step,
                                             "mode": self.mode}}, finished)
            keep = {manifest_folder(p) for p in run.files()}
            for d in run.dir.iterdir():
                if _DIR.match(d.name) and d.name not in keep and d.is_dir():
                    for f in d.iterdir():
                        f.unlink(missing_ok=True)
                    d.rmdir()


def selector_state(sel: Any) -> dict[str, Any]:
    """The model-selection state of a ``Selector`` (everything but its config)."""
    return {"best_score": tuple(sel.best_score), "best_state": sel.best_state, "best_epoch": sel.best_epoch,
            "best_val": sel.best_val, "test_at_best": sel.test_at_best, "since": sel.since, "history": sel.history}


def load_selector(sel: Any, state: dict[str, Any]) -> None:
    """Put ``selector_state``'s values back into ``sel``."""
    sel.best_score = tuple(state["best_score"])
    sel.best_state = state["best_state"]
    sel.best_epoch, sel.best_val, sel.test_at_best = state["best_epoch"], state["best_val"], state["test_at_best"]
    sel.since, sel.history = state["since"], list(state["history"])


def loop_state(epoch: int, stopped: bool, sel: Any, lists: list[list[Any]], comm: Comm) -> dict[str, Any]:
    """The epoch loop's state shared by the three pipe trainers."""
    return {"epoch": epoch, "stopped": stopped, "selector": selector_state(sel), "lists": [list(x) for x in lists],
            "sent": dict(comm.sent), "received": dict(comm.received)}


def load_loop(part: dict[str, Any], sel: Any, lists: list[list[Any]], comm: Comm) -> tuple[int, bool]:
    """Restore ``loop_state``'s values; returns the first epoch to run and whether the run had stopped."""
    load_selector(sel, part["selector"])
    for dst, src in zip(lists, part["lists"]):
        dst[:] = src
    comm.sent.clear()
    comm.sent.update(part["sent"])
    comm.received.clear()
    comm.received.update(part["received"])
    return int(part["epoch"]) + 1, bool(part["stopped"])


def owned_prefixes(layers: range, first: bool, last: bool) -> tuple[str, ...]:
    """State-dict key prefixes of what a stage trains (as ``common.owned_parts`` groups it)."""
    out = [f"layers.{i}." for i in layers] + [f"norms.{i}." for i in layers]
    return tuple(out + (["encoder."] if first else []) + (["head."] if last else []))


def gather_stack_state(comm: Comm, model: nn.Module, ranges: list[range]) -> dict[str, torch.Tensor] | None:
    """The whole ``GNNStack``'s state dict on rank 0 (``None`` on the others): every rank sends
    the entries of the layers it owns (counted under ``report``); entries no stage trains are
    rank 0's (identical on every rank: built from the seed)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    P = len(ranges)
    pref = [owned_prefixes(ranges[r], r == 0, r == P - 1) for r in range(P)]
    with comm.in_phase("report"):
        for r in range(1, P):
            keys = [k for k in state if k.startswith(pref[r])]
            for k in keys:
                if comm.rank == r:
                    comm.send(state[k].to(comm.device), 0, f"the saved model's {k}")
                elif comm.rank == 0:
                    got = comm.recv(tuple(state[k].shape), r, f"the saved model's {k}", state[k].dtype)
                    state[k] = got.to(state[k].device)
    return {k: v.cpu() for k, v in state.items()} if comm.rank == 0 else None


def manifest_folder(path: Path) -> str:
    """The ``pipe-*`` folder a manifest ``ckpt-S.pt`` names."""
    return f"pipe-{path.name[5:-3]}"
