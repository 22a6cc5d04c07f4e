"""Counted, failure-aware point-to-point and collective communication on ``torch.distributed``.

Every byte the pipeline and the graph-parallel baseline move goes through ``Comm``, which
counts it per phase (``train``, ``eval``, ``control``, ``setup``, ``report``). The data plane
uses only blocking ``send``/``recv`` in an order fixed on both sides (gloo's ``isend``/``irecv``
may not progress until ``wait()``, and several outstanding requests between one pair can
hang); pairwise exchanges pair ranks in rounds (lower rank sends first). Collectives are used
only for a few scalars and for the baseline's gradient all-reduce. (``all_to_all`` and
``all_to_all_single`` do exist on gloo in torch 2.13: both ran on 2 ranks with equal splits.
The halo exchange still uses pairs of blocking send/recv, since its message sizes differ per pair
and every byte is counted where it is sent.)

A failed operation (a peer died: gloo reports "connection closed by peer"; or no answer within
the process group's timeout, ``TrainConfig.dist_timeout``) raises ``PeerFailure`` naming the
rank. Each rank that fails that way first records whom it lost in the rendezvous store, so a
rank that lost a *healthy* neighbour (which itself lost the dead rank) names the dead one.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from gnnsys.errors import GnnsysError

#: Seconds a failing rank waits for its lost peer's own report in the store (to name the root cause).
REPORT_WAIT_S = 3.0


class PeerFailure(GnnsysError):
    """A peer rank died or stopped answering within the timeout."""


class Comm:
    """Byte-counting wrapper of a process group (the default group of ``torch.distributed``).

    ``rank``/``world``: this rank and the world size; ``store``: the rendezvous store (``None``:
    failures name the direct peer only); ``device``: where received tensors live (gloo moves
    CPU tensors, so CUDA tensors are staged through the host when the backend is gloo)."""

    def __init__(self, rank: int, world: int, store: Any = None, device: torch.device | str = "cpu",
                 backend: str = "gloo") -> None:
        self.rank, self.world, self.store = rank, world, store
        self.device = torch.device(device)
        self.stage_on_host = backend == "gloo" and self.device.type != "cpu"
        self.phase = "setup"
        self.sent: dict[str, int] = defaultdict(int)
        self.received: dict[str, int] = defaultdict(int)
        self.where = ""  # what the rank is doing (for error messages)

    # ------------------------------------------------------------------ bookkeeping
    @contextmanager
    def in_phase(self, phase: str):
        """Count the enclosed traffic under ``phase``."""
        old, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = old

    def counts(self) -> dict[str, dict[str, int]]:
        """``{phase: {"sent": bytes, "received": bytes}}`` so far."""
        phases = sorted(set(self.sent) | set(self.received))
        return {p: {"sent": self.sent[p], "received": self.received[p]} for p in phases}

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        """Copies of the sent and received counters (bytes per phase)."""
        return dict(self.sent), dict(self.received)

    @staticmethod
    def nbytes(t: torch.Tensor) -> int:
        """Payload bytes of ``t``."""
        return t.numel() * t.element_size()

    # ------------------------------------------------------------------ failures
    def _fail(self, peer: int, what: str, exc: BaseException) -> None:
        culprit, chain = peer, []
        if peer < 0:  # a collective: the backend does not say which peer failed
            raise PeerFailure(f"rank {self.rank}: a peer rank died or stopped answering while this rank was {what}; "
                              f"the other ranks' errors name it; backend said: {str(exc).splitlines()[0]}") from exc
        if self.store is not None:
            try:
                self.store.set(f"gnnsys/fail/{self.rank}", f"{peer}|{what}")
                seen = {self.rank}
                deadline = time.monotonic() + REPORT_WAIT_S
                while culprit not in seen:
                    seen.add(culprit)
                    report = self._report_of(culprit, deadline)
                    if report is None:
                        break  # the culprit never reported: it is the one that died or hung
                    nxt, _, their = report.partition("|")
                    chain.append(f"rank {culprit} lost rank {nxt} ({their})")
                    culprit = int(nxt)
            except Exception:  # noqa: BLE001 - the store may have died with the rank hosting it
                pass
        detail = "; ".join(chain)
        raise PeerFailure(
            f"rank {self.rank}: rank {culprit} died or stopped answering (no reply within the timeout, or its "
            f"connection closed) while this rank was {what}{' [' + detail + ']' if detail else ''}; "
            f"backend said: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc

    def _report_of(self, rank: int, deadline: float) -> str | None:
        key = f"gnnsys/fail/{rank}"
        while True:
            if self.store.check([key]):
                return self.store.get(key).decode()
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    # ------------------------------------------------------------------ point to point
    def send(self, t: torch.Tensor, dst: int, what: str) -> None:
        """Blocking send of ``t`` to ``dst`` (counted)."""
        t = t.detach().contiguous()
        if self.stage_on_host:
            t = t.cpu()
        try:
            dist.send(t, dst)
        except RuntimeError as e:
            self._fail(dst, f"sending {what} to rank {dst}", e)
        self.sent[self.phase] += self.nbytes(t)

    def recv(self, shape: tuple[int, ...], src: int, what: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Blocking receive of a tensor of ``shape`` from ``src`` (counted), on ``self.device``."""
        buf = torch.empty(shape, dtype=dtype, device="cpu" if self.stage_on_host else self.device)
        try:
            dist.recv(buf, src)
        except RuntimeError as e:
            self._fail(src, f"waiting for {what} from rank {src}", e)
        self.received[self.phase] += self.nbytes(buf)
        return buf.to(self.device) if self.stage_on_host else buf

    def exchange(self, peer: int, out: torch.Tensor, in_shape: tuple[int, ...], what: str) -> torch.Tensor:
        """Send ``out`` to ``peer`` and receive ``in_shape`` from it; the lower rank sends first."""
        if self.rank < peer:
            self.send(out, peer, what)
            return self.recv(in_shape, peer, what, out.dtype)
        got = self.recv(in_shape, peer, what, out.dtype)
        self.send(out, peer, what)
        return got

    # ------------------------------------------------------------------ collectives
    def all_reduce(self, t: torch.Tensor, what: str) -> torch.Tensor:
        """Sum ``t`` over ranks in place. Counted as a ring all-reduce moves it: each rank sends
        and receives ``2 (P-1) / P`` times the tensor's bytes."""
        if self.world == 1:
            return t
        dev = t.device
        buf = t.cpu() if self.stage_on_host else t
        try:
            dist.all_reduce(buf)
        except RuntimeError as e:
            self._fail(-1 if self.world > 2 else 1 - self.rank, f"in an all-reduce of {what}", e)
        moved = 2 * (self.world - 1) * self.nbytes(buf) // self.world
        self.sent[self.phase] += moved
        self.received[self.phase] += moved
        if buf is not t:
            t.copy_(buf.to(dev))
        return t

    def broadcast(self, t: torch.Tensor, src: int, what: str) -> torch.Tensor:
        """``t`` from ``src`` to every rank in place. Counted as ``src`` sending it to each of the
        other ``P-1`` ranks and each of them receiving it once."""
        if self.world == 1:
            return t
        dev = t.device
        buf = t.cpu() if self.stage_on_host else t
        try:
            dist.broadcast(buf, src)
        except RuntimeError as e:
            self._fail(src, f"waiting for the broadcast of {what} from rank {src}", e)
        if self.rank == src:
            self.sent[self.phase] += (self.world - 1) * self.nbytes(buf)
        else:
            self.received[self.phase] += self.nbytes(buf)
        if buf is not t:
            t.copy_(buf.to(dev))
        return t


def pair_rounds(world: int) -> list[list[tuple[int, int]]]:
    """Round-robin pairings of ``world`` ranks (the circle method): every pair meets in exactly
    one round and no rank is in two pairs of a round, so blocking exchanges never wait in a cycle."""
    ranks = list(range(world)) + ([None] if world % 2 else [])
    m = len(ranks)
    rounds = []
    for _ in range(m - 1):
        pairs = [(ranks[i], ranks[m - 1 - i]) for i in range(m // 2)]
        rounds.append([(min(a, b), max(a, b)) for a, b in pairs if a is not None and b is not None])
        ranks = [ranks[0]] + [ranks[-1]] + ranks[1:-1]
    return rounds


def timeout_delta(seconds: float) -> timedelta:
    """``seconds`` as the ``timedelta`` torch.distributed takes."""
    return timedelta(seconds=float(seconds))
