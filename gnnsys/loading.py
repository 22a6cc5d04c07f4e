"""The loading pipeline: items -> sample subgraph -> build operators -> fetch features -> copy
to device, one stage a line (as DGL GraphBolt's), with the next batches prepared in a worker
thread while the current one computes.

    batches = LoadingPipeline(sampler, dataset, device="cpu", operators=("gcn",))
    for batch in batches:          # one epoch
        loss = model(batch) ...

- **sample**: the source (a GraphSAINT sampler, ``FullGraphLoader``, ``GraphBatchLoader``,
  ``LinkBatchLoader``, or any iterable of ``MiniBatch``) yields subgraphs: node ids, local
  edges (in CSR order where the sampler emits it), targets and normalization weights, never
  features. Samplers are deterministic per subgraph index, so the stream can run ahead.
- **look ahead**: a feature store that plans its cache (``store.lookahead > 0``) is shown the
  node ids of the next ``lookahead`` batches before each gather (``store.plan``).
- **build operators**: the propagation operators the model's layers use (``batch.adj(norm)``),
  built here so that the work leaves the training step and overlaps it.
- **fetch features**: ``x`` (and node labels, edge features) gathered through the dataset's
  ``FeatureStore`` — in memory, tiered, on disk.
- **copy to device**: the batch moves to the compute device (``non_blocking`` from pinned
  memory on CUDA).

Prefetching (``prefetch=N``) runs every stage for the next ``N`` batches in one worker thread;
the stages draw no numbers from torch's global generator, so a run gives the same batches, in
the same order, bit for bit, with or without it. On by default (``prefetch=None``) when the
features live off the compute device (the fetch waits on a disk or a copy), or when the source
samples subgraphs and the worker has a core of its own (an accelerator computes, or torch's
threads leave a CPU core free).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from gnnsys.batch import MiniBatch
from gnnsys.dataset import Dataset
from gnnsys.errors import ConfigError
from gnnsys.storage import FeatureStore, InMemoryFeatureStore
from gnnsys.storage.allocator import keep_freed_memory
from gnnsys.threads import background, usable_cores


class FetchFeatures:
    """Stage: ``x`` from the feature store, node labels (node tasks) and edge features.

    A whole-graph batch (``batch.all_nodes``) reads the store's ``all()`` once; the rows are
    kept while the source hands out batches of that same graph (``LinkBatchLoader`` yields a
    view of one base graph per batch of pairs). With ``pin=True`` (the pipeline sets it for a
    CUDA device) rows of an in-memory CPU store are gathered straight into a reused ring of
    pinned buffers, so the device copy is one asynchronous transfer."""

    def __init__(self, features: FeatureStore | None, labels: torch.Tensor | None = None,
                 edge_features: torch.Tensor | None = None, pin: bool = False, ring: int = 4) -> None:
        self.features, self.labels, self.edge_features = features, labels, edge_features
        self._whole: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.pin, self._ring = pin and torch.cuda.is_available(), _PinnedRing(ring)
        self.single_threaded = False  # set by a pipeline that runs this stage in its worker thread

    @classmethod
    def of(cls, dataset: Dataset, pin: bool = False) -> FetchFeatures:
        """The fetch stage of ``dataset`` (node labels only for node tasks: graph batches carry
        their graphs' labels from the sampler)."""
        return cls(dataset.features, dataset.labels if dataset.task == "node" else None, dataset.edge_features,
                   pin=pin)

    def __call__(self, batch: MiniBatch) -> MiniBatch:
        if batch.x is None and self.features is not None:
            batch.x = self._gather(batch)
        if batch.y is None and self.labels is not None:
            batch.y = self.labels if batch.all_nodes else self.labels[batch.node_ids.to(self.labels.device)]
        if batch.edge_attr is None and self.edge_features is not None:
            ef = self.edge_features  # aligned with the graph's CSR positions, as batches' edge_ids
            if batch.all_nodes and batch.edge_ids is None:
                batch.edge_attr = ef
            elif batch.edge_ids is not None:
                batch.edge_attr = ef[batch.edge_ids.to(ef.device)]
        return batch

    def _gather(self, batch: MiniBatch) -> torch.Tensor:
        store = self.features
        if batch.all_nodes:
            if self._whole is None or self._whole[0] is not batch.node_ids:
                self._whole = (batch.node_ids, store.all())
            return self._whole[1]
        x = getattr(store, "x", None)
        if type(store) is not InMemoryFeatureStore or x.device.type != "cpu" or not (self.pin or self.single_threaded):
            return store.gather(batch.node_ids)
        # an in-memory CPU matrix: rows straight into a pinned buffer (CUDA), or by numpy's
        # single-threaded take in the prefetch worker (torch's gather would start a second
        # OpenMP team beside the model's and both would spin on 2 cores)
        ids = store._check_ids(batch.node_ids)
        if self.pin:
            out = self._ring.take(ids.numel(), x.size(1), x.dtype)
            np.take(x.numpy(), ids.numpy(), axis=0, out=out.numpy())
        else:
            out = torch.from_numpy(np.take(x.numpy(), ids.numpy(), axis=0))
        store._rows += ids.numel()
        store._bytes += out.numel() * out.element_size()
        return out


class _PinnedRing:
    """A ring of pinned host buffers, each reused once the device copy made from it is done
    (its CUDA event)."""

    def __init__(self, size: int) -> None:
        self.size, self.i = max(2, size), 0
        self.bufs: list[torch.Tensor | None] = [None] * self.size
        self.events: list[Any] = [None] * self.size

    def take(self, rows: int, dim: int, dtype: torch.dtype) -> torch.Tensor:
        i = self.i
        self.i = (i + 1) % self.size
        if self.events[i] is not None:
            self.events[i].synchronize()  # the copy that read this buffer has finished
            self.events[i] = None
        buf = self.bufs[i]
        if buf is None or buf.numel() < rows * dim or buf.dtype != dtype:
            buf = torch.empty(int(rows * 1.25) * dim + 1, dtype=dtype).pin_memory()
            self.bufs[i] = buf
        out = buf[: rows * dim].view(rows, dim)
        out._gnnsys_ring = (self, i)  # CopyToDevice records the copy's event here
        return out

    def copied(self, i: int, event: Any) -> None:
        self.events[i] = event


class BuildOperators:
    """Stage: the propagation operators ``norms`` of the batch (``batch.adj``), cached on it,
    and with ``transpose`` (training) the transpose each one's backward pass multiplies by
    (``gnnsys.sparse.csr_transpose``; a symmetric operator is its own)."""

    def __init__(self, norms: Iterable[str] = (), transpose: bool = True) -> None:
        self.norms, self.transpose = tuple(dict.fromkeys(norms)), transpose

    def __call__(self, batch: MiniBatch) -> MiniBatch:
        from gnnsys.sparse import csr_transpose

        for norm in self.norms:
            op = batch.adj(norm)
            if self.transpose and op.is_sparse_csr and not hasattr(op, "_gnnsys_mean_transpose"):
                csr_transpose(op)
        return batch


class CopyToDevice:
    """Stage: the batch on ``device``. On CUDA the copy runs on a side stream and the batch
    carries its event (``ready``): the consumer's stream waits for it, so the transfer of the
    next batch overlaps the current step. A whole-graph batch is copied once and reused while
    the source hands out views of the same graph."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self._whole: tuple[torch.Tensor, MiniBatch] | None = None
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    def __call__(self, batch: MiniBatch, then: Any = None) -> MiniBatch:
        """The batch on the device; ``then(batch)`` (the operator build) runs after the copy,
        on the same side stream."""
        then = then or (lambda b: b)
        if batch.device == self.device and (batch.x is None or batch.x.device == self.device):
            return then(batch)
        if self._stream is None:
            return then(self._copy(batch, False))
        with torch.cuda.stream(self._stream):
            out = then(self._copy(batch, True))
            event = torch.cuda.Event()
            event.record(self._stream)
        ring = getattr(batch.x, "_gnnsys_ring", None)
        if ring is not None:
            ring[0].copied(ring[1], event)
        out._gnnsys_ready = event
        return out

    def _copy(self, batch: MiniBatch, non_blocking: bool) -> MiniBatch:
        if not batch.all_nodes:
            return batch.to(self.device, non_blocking=non_blocking)
        if self._whole is None or self._whole[0] is not batch.node_ids:
            self._whole = (batch.node_ids, batch.to(self.device, non_blocking=non_blocking))
        return _with_own_fields(self._whole[1], batch, self.device, non_blocking)


def ready(batch: MiniBatch) -> MiniBatch:
    """``batch`` usable on the current CUDA stream: wait for its side-stream copy and tell the
    allocator that this stream uses its memory (no-op off CUDA)."""
    event = getattr(batch, "_gnnsys_ready", None)
    if event is None:
        return batch
    stream = torch.cuda.current_stream(batch.device)
    stream.wait_event(event)
    tensors = [v for v in vars(batch).values() if isinstance(v, torch.Tensor)]
    for op in batch._adj.values():
        for a in (op, getattr(op, "_gnnsys_transpose", None), *getattr(op, "_gnnsys_mean_transpose", ())):
            if a is not None:
                tensors += [a.crow_indices(), a.col_indices(), a.values()] if a.is_sparse_csr else [a]
    for t in tensors:
        if t.is_cuda:
            t.record_stream(stream)
    batch._gnnsys_ready = None
    return batch


#: Fields a batch of a whole graph shares with the other batches of that graph (the rest, targets
#: and pairs, are its own).
_SHARED_FIELDS = ("node_ids", "edge_index", "x", "edge_weight", "edge_ids", "edge_attr", "graph_index", "csr_ptr")


def _with_own_fields(base: MiniBatch, batch: MiniBatch, device: torch.device, non_blocking: bool) -> MiniBatch:
    """``base`` (already on ``device``) with ``batch``'s own fields copied over."""
    from dataclasses import fields

    kw = {}
    for f in fields(batch):
        if f.name == "_adj":
            continue
        v = getattr(base if f.name in _SHARED_FIELDS else batch, f.name)
        kw[f.name] = v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
    out = type(batch)(**kw)
    out._adj = base._adj
    return out


def operator_norms(model: torch.nn.Module | None) -> tuple[str, ...]:
    """The propagation norms the layers of ``model`` take from the batch (``layer.propagation``)."""
    from gnnsys.sparse import NORMS

    if model is None:
        return ()
    layers = getattr(model, "layers", [])
    return tuple(dict.fromkeys(p for p in (getattr(la, "propagation", None) for la in layers) if p in NORMS))


class LoadingPipeline:
    """An iterable of ready ``MiniBatch`` es: one pass over ``source`` per iteration (an epoch).

    Args:
        source: an iterable of subgraph batches (sampler or loader); ``len(source)`` if it has one.
        dataset: where features, labels and edge features come from (``FetchFeatures.of``);
            or pass ``fetch=`` for a stage of your own.
        device: the compute device.
        operators: propagation norms to build for every batch (``operator_norms(model)``).
        backward: also build each operator's transpose for the backward pass (training).
        prefetch: batches prepared ahead in a worker thread; ``0`` runs every stage inline;
            ``None`` (default) prefetches one batch when the source samples subgraphs or the
            features live off the compute device, else none.
        lookahead: batches whose node ids the feature store sees ahead (default: what the
            store asks for, ``store.lookahead``).
    """

    def __init__(self, source: Iterable[MiniBatch], dataset: Dataset | None = None, *,
                 device: torch.device | str = "cpu", operators: Sequence[str] = (),
                 backward: bool = True, fetch: FetchFeatures | None = None, prefetch: int | None = None,
                 lookahead: int | None = None) -> None:
        pin = torch.device(device).type == "cuda"
        if fetch is None:
            fetch = FetchFeatures.of(dataset, pin=pin) if dataset is not None else FetchFeatures(None)
        if prefetch is not None and prefetch < 0:
            raise ConfigError(f"prefetch must be >= 0 batches, got {prefetch}")
        self.source, self.device = source, torch.device(device)
        self.fetch = fetch
        self.operators = BuildOperators(operators, transpose=backward)
        self.copy = CopyToDevice(self.device)
        store = fetch.features
        self.lookahead = int(lookahead if lookahead is not None else getattr(store, "lookahead", 0) or 0)
        if prefetch is None:
            prefetch = 1 if _off_device(store, self.device) or (_samples(source) and _spare_core(self.device)) else 0
        self.prefetch = prefetch
        fetch.single_threaded = prefetch > 0
        self.last_epoch_stats: dict[str, Any] = {}
        keep_freed_memory()  # steps reuse freed blocks instead of faulting pages in again

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, Any]:
        """The source's state (``gnnsys.checkpoint.source_state``): the stages after sampling
        hold none that changes what the next epoch yields."""
        from gnnsys.checkpoint import source_state

        return {"source": source_state(self.source)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put the source back where ``state_dict`` found it."""
        from gnnsys.checkpoint import load_source_state

        load_source_state(self.source, state.get("source"))

    # ---------------------------------------------------------------- stages
    def prepare(self, batch: MiniBatch) -> MiniBatch:
        """Operators, features, device: everything after sampling, for one batch."""
        if self.device.type == "cuda":  # operators are cheapest where they will be used
            return self.copy(self.fetch(batch), then=self.operators)
        return self.copy(self.fetch(self.operators(batch)))

    def _planned(self, batches: Iterator[MiniBatch]) -> Iterator[MiniBatch]:
        """Hold ``lookahead`` sampled batches and show the store their node ids before each
        gather (the samplers run ahead; nothing else waits)."""
        store = self.fetch.features
        window: deque[MiniBatch] = deque()
        for b in batches:
            window.append(b)
            if len(window) > self.lookahead:
                store.plan([w.node_ids for w in window])  # type: ignore[union-attr]
                yield window.popleft()
        while window:
            store.plan([w.node_ids for w in window])  # type: ignore[union-attr]
            yield window.popleft()

    def _stages(self) -> Iterator[MiniBatch]:
        batches: Iterator[MiniBatch] = iter(self.source)            # sample subgraph
        if self.lookahead > 0 and self.fetch.features is not None:
            batches = self._planned(batches)                        # look ahead (planned caches)
        return map(self.prepare, batches)                           # operators, features, device

    def __iter__(self) -> Iterator[MiniBatch]:
        begin = getattr(self.fetch.features, "begin_epoch", None)
        if begin is not None:  # an out-of-core store plans the epoch (packed layout) before it starts
            begin(self.source)
        batches = self._stages() if self.prefetch <= 0 else _prefetched(self._stages, self.prefetch)
        if self.device.type != "cuda":
            return batches
        return map(ready, batches)


def _samples(source: Any) -> bool:
    """Whether ``source`` samples subgraphs (GraphSAINT), the work that preparing ahead hides.
    Batches of whole small graphs or of link pairs are cheap to make: handing them between
    threads costs more than it saves."""
    from gnnsys.samplers.saint_base import SaintLoader, SaintSampler

    return isinstance(source, SaintSampler | SaintLoader)


def _spare_core(device: torch.device) -> bool:
    """Whether a worker thread can sample beside the model without taking a core from it: the
    model computes on an accelerator, or torch's threads leave a CPU core free. On a CPU whose
    every core runs torch's OpenMP team, the worker only competes with it (each parallel region
    waits for its slowest member), and sampling inline, a group of subgraphs over all cores at
    once, is faster."""
    if device.type != "cpu":
        return True
    return usable_cores() > torch.get_num_threads()


def _off_device(store: FeatureStore | None, device: torch.device) -> bool:
    """Whether gathering from ``store`` moves rows from another tier or device."""
    if store is None:
        return False
    x = getattr(store, "x", None)
    if isinstance(x, torch.Tensor) and type(store).tier == "memory":
        return x.device != device
    return True


_DONE = object()


def _prefetched(make: Any, depth: int) -> Iterator[MiniBatch]:
    """Items of the iterator ``make()``, produced ``depth`` ahead by a worker thread.

    The worker stops when the consumer stops (a closed or abandoned generator) and re-raises
    its exception in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            with background():  # lower priority: the model's threads come first
                produce()
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    def produce() -> None:
        for item in make():
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        q.put(_DONE)

    t = threading.Thread(target=work, name="gnnsys-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


def full_batch(dataset: Dataset, device: torch.device | str | None = None,
               operators: Sequence[str] = ()) -> MiniBatch:
    """The whole graph of ``dataset`` as one prepared batch (the pipeline's stages on
    ``full_graph(dataset)``): full-batch training and evaluation."""
    from gnnsys.samplers.full import full_graph

    pipe = LoadingPipeline([full_graph(dataset)], dataset, device=device or "cpu", operators=operators,
                           backward=False, prefetch=0)
    return next(iter(pipe))
