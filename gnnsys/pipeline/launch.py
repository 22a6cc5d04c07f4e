"""Starting the ranks: from torchrun's environment, or spawning local processes.

- Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) every process joins the rendezvous store
  ``env://`` names (torchrun's agent store, so multi-node rendezvous needs no code here) and
  runs its own rank; ``WORLD_SIZE`` must equal ``--stages``.
- Without it, ``spawn`` hosts a ``TCPStore`` in the calling process (it outlives any rank, so
  the survivors can still read who failed) and starts ``stages`` processes with
  ``torch.multiprocessing`` (start method ``spawn``), the same environment torchrun would set.
  The parent waits for them; when one fails it gives the others ``dist_timeout`` + 10 s to
  exit with their own error (the last live rank ``LONE_RANK_GRACE_S``: it cannot finish
  alone), then ends the rest, and raises one error naming each rank's fate. A rank whose peer
  dies fails at once (the connection closes); one whose peer hangs fails after
  ``dist_timeout`` seconds (the process group's timeout). So no run outlives a failure by
  more than ``dist_timeout`` + 10 s.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from gnnsys.config import TrainConfig
from gnnsys.errors import ConfigError, GnnsysError
from gnnsys.pipeline.comm import REPORT_WAIT_S, Comm, timeout_delta

#: Seconds the last live rank of a failed run gets to exit on its own before it is ended: room
#: for its own failure report (it waits up to ``REPORT_WAIT_S`` for the dead rank's).
LONE_RANK_GRACE_S = REPORT_WAIT_S + 7.0


class PipelineError(GnnsysError):
    """One or more ranks of a distributed run failed."""


@dataclass
class DistContext:
    """This rank's place in the run."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str
    comm: Comm


def env_world_size() -> int | None:
    """``WORLD_SIZE`` when started by torchrun (or a compatible launcher), else ``None``."""
    w = os.environ.get("WORLD_SIZE")
    return int(w) if w else None


def is_primary() -> bool:
    """Whether this process is rank 0 (or not part of a distributed run)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def resolve_backend(cfg: TrainConfig) -> str:
    """``cfg.backend``, with ``auto`` = nccl on CUDA devices, gloo on CPU."""
    if cfg.backend != "auto":
        return cfg.backend
    return "nccl" if str(cfg.device).startswith("cuda") else "gloo"


def check_backend(cfg: TrainConfig, local_world: int) -> str:
    """The backend to use; ``ConfigError`` when it cannot run here (nccl without enough GPUs)."""
    backend = resolve_backend(cfg)
    if backend == "nccl":
        if not (torch.cuda.is_available() and dist.is_nccl_available()):
            raise ConfigError("--backend nccl needs CUDA GPUs and a CUDA build of torch, and none is available here; "
                              "use --backend gloo (CPU processes) or run on a GPU machine")
        if torch.cuda.device_count() < local_world:
            raise ConfigError(f"--backend nccl runs one rank per GPU: {local_world} local ranks but "
                              f"{torch.cuda.device_count()} GPUs; use fewer --stages per node or --backend gloo")
        if not str(cfg.device).startswith("cuda"):
            raise ConfigError("--backend nccl moves CUDA tensors: add --device cuda")
    elif not dist.is_gloo_available():  # pragma: no cover
        raise ConfigError("this torch build has no gloo backend; use --backend nccl on GPUs")
    return backend


def rank_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    """``cuda:local_rank`` (modulo the GPU count) for a CUDA config, else the CPU."""
    if str(cfg.device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {cfg.device} but CUDA is not available; use --device cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def set_threads(cfg: TrainConfig, local_world: int) -> None:
    """One share of the cores per local rank (``cfg.threads_per_rank`` wins)."""
    n = cfg.threads_per_rank or max(1, (os.cpu_count() or 1) // max(local_world, 1))
    torch.set_num_threads(n)


def init_from_env(cfg: TrainConfig) -> DistContext:
    """Join the process group described by torchrun's environment variables."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if cfg.stages is not None and cfg.stages != world:
        raise ConfigError(f"the launcher started {world} processes (WORLD_SIZE) but --stages is {cfg.stages}; "
                          f"use torchrun --nproc-per-node {cfg.stages} (times the node count) or --stages {world}")
    backend = check_backend(cfg, local_world)
    set_threads(cfg, local_world)
    device = rank_device(cfg, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = timeout_delta(cfg.dist_timeout)
    store, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=world, timeout=timeout))
    if not dist.is_initialized():
        dist.init_process_group(backend, store=dist.PrefixStore("pg", store), rank=rank, world_size=world,
                                timeout=timeout)
    comm = Comm(rank, world, dist.PrefixStore("gnnsys", store), device, backend)
    return DistContext(rank, world, local_rank, device, backend, comm)


def single_context(cfg: TrainConfig) -> DistContext:
    """A one-rank context (no process group: a 1-stage run communicates nothing)."""
    device = rank_device(cfg, 0)
    return DistContext(0, 1, 0, device, resolve_backend(cfg), Comm(0, 1, None, device, resolve_backend(cfg)))


def shutdown() -> None:
    """Leave the process group (if this process joined one)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _watch_parent(parent: int) -> None:
    """Exit when the spawning process is gone (an orphaned rank would otherwise train on alone)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(5)

    threading.Thread(target=watch, daemon=True, name="gnnsys-parent-watch").start()


def _child(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple, queue: Any) -> None:
    _watch_parent(os.getppid())
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world),
                       "TORCHELASTIC_USE_AGENT_STORE": "True"})
    try:
        result = fn(*args)
        queue.put((rank, "ok", result))
    except GnnsysError as e:
        _exit_with(queue, (rank, type(e).__name__, str(e)), 3)
    except BaseException as e:  # noqa: BLE001 - report anything, then exit non-zero
        _exit_with(queue, (rank, "crash", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"), 4)
    shutdown()


def _exit_with(queue: Any, report: tuple, code: int) -> None:
    """Hand ``report`` to the parent, then leave at once (a broken process group may hang in teardown)."""
    queue.put(report)
    queue.close()
    queue.join_thread()
    os._exit(code)


def _fate(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"was killed by signal {-code} ({name})"
    return f"exited with status {code}"


def spawn(fn: Callable[..., Any], args: tuple, world: int, cfg: TrainConfig) -> Any:
    """Run ``fn(*args)`` on ``world`` local processes (ranks ``0..world-1``); rank 0's return value.

    Raises ``ConfigError`` when every failing rank failed on bad input, else ``PipelineError``
    with one line per failed rank (the dead one first)."""
    import torch.multiprocessing as mp

    store = dist.TCPStore("127.0.0.1", 0, world, is_master=True, wait_for_workers=False,
                          timeout=timeout_delta(cfg.dist_timeout))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(r, world, store.port, fn, args, queue), daemon=False)
             for r in range(world)]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    errors: dict[int, tuple[str, str]] = {}
    deadline = None

    def drain() -> None:
        while True:
            try:
                rank, kind, payload = queue.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty
                return
            if kind == "ok":
                results[rank] = payload
            else:
                errors[rank] = (kind, payload)

    try:
        while True:
            drain()
            alive = [p for p in procs if p.is_alive()]
            for r, p in enumerate(procs):
                if not p.is_alive() and p.exitcode not in (0, None) and r not in errors:
                    time.sleep(0.2)  # its report may still be in the pipe
                    drain()
                    if r not in errors:
                        errors[r] = ("died", f"rank {r} {_fate(p.exitcode)}")
            if not alive:
                break
            if errors and deadline is None:
                deadline = time.monotonic() + cfg.dist_timeout + 10.0
            if errors and len(alive) == 1 and deadline is not None:
                # a lone rank cannot finish a distributed run: it is hung or about to fail
                deadline = min(deadline, time.monotonic() + LONE_RANK_GRACE_S)
            if deadline is not None and time.monotonic() > deadline:
                for r, p in enumerate(procs):
                    if p.is_alive():
                        p.terminate()
                        errors.setdefault(r, ("hung", f"rank {r} did not exit within the timeout and was ended"))
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():  # pragma: no cover
                p.kill()
        drain()
        del store
    if errors:
        kinds = {k for k, _ in errors.values()}
        if kinds == {"ConfigError"}:
            raise ConfigError(errors[min(errors)][1])
        order = sorted(errors, key=lambda r: (errors[r][0] not in ("died", "hung"), r))
        lines = [errors[r][1] if errors[r][1].startswith(f"rank {r}") else f"rank {r}: {errors[r][1]}" for r in order]
        raise PipelineError("distributed run failed:\n  " + "\n  ".join(lines))
    if 0 not in results:  # pragma: no cover
        raise PipelineError("rank 0 returned no result")
    return results[0]
