"""Backing tiers of the ``TieredFeatureStore``: where the rows the cache misses come from.

A backing tier holds every row. ``HostTier`` keeps the matrix in memory (pinned when CUDA is
available, so the GPU can copy from it or read it directly); ``DiskTier`` reads a
``DiskFeatureStore`` (today ``numpy.memmap``; "Feature tiering II" replaces the layout behind
this same interface).
"""

from __future__ import annotations

import numpy as np
import torch
from gnnsys.storage.feature_store import DiskFeatureStore, InMemoryFeatureStore

from gnnsys.errors import ConfigError, DataFormatError

_BIT_DTYPES = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def bit_view(x: torch.Tensor) -> np.ndarray:
    """The rows of ``x`` (CPU, contiguous) as a numpy array of a same-size integer type: copying
    it copies the bits, whatever the dtype (bfloat16 included)."""
    size = x.element_size()
    if size not in _BIT_DTYPES:
        raise DataFormatError(f"features of dtype {x.dtype} ({size} bytes) are not supported; use a 1, 2, 4 "
                              "or 8 byte dtype")
    if x.dtype.is_complex:
        raise DataFormatError(f"complex features ({x.dtype}) are not supported")
    return x.view(_BIT_DTYPES[size]).numpy()


class BackingTier:
    """Interface: every row of a ``num_nodes x dim`` matrix, read by ids.

    ``read(ids)`` returns the rows as a CPU tensor; ``rows`` is the in-memory matrix where there
    is one (``None`` for a disk tier), which lets the store copy from it without a staging copy
    and the GPU read it in place (zero-copy)."""

    name = "base"
    rows: torch.Tensor | None = None

    @property
    def num_nodes(self) -> int:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

    @property
    def row_bytes(self) -> int:
        """Bytes of one row."""
        return self.dim * torch.empty(0, dtype=self.dtype).element_size()

    def read(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` (int64, CPU, in range) as a CPU tensor."""
        raise NotImplementedError

    def all(self) -> torch.Tensor:
        """The whole matrix as a CPU tensor."""
        raise NotImplementedError


class HostTier(BackingTier):
    """The full matrix in host memory; pinned (page-locked) when ``pin`` is true."""

    name = "host"

    def __init__(self, x: torch.Tensor, pin: bool) -> None:
        x = x.contiguous()
        self.rows = x.pin_memory() if pin and not x.is_pinned() else x
        self.pinned = bool(self.rows.is_pinned()) if pin else False

    @property
    def num_nodes(self) -> int:
        return self.rows.size(0)

    @property
    def dim(self) -> int:
        return self.rows.size(1)

    @property
    def dtype(self) -> torch.dtype:
        return self.rows.dtype

    def read(self, ids: torch.Tensor) -> torch.Tensor:
        return self.rows.index_select(0, ids)

    def all(self) -> torch.Tensor:
        return self.rows


class DiskTier(BackingTier):
    """A ``DiskFeatureStore``'s file, read row by row (sorted reads, through its memmap)."""

    name = "disk"

    def __init__(self, store: DiskFeatureStore) -> None:
        self.store = store

    @property
    def num_nodes(self) -> int:
        return self.store.num_nodes

    @property
    def dim(self) -> int:
        return self.store.dim

    @property
    def dtype(self) -> torch.dtype:
        return self.store.dtype

    def read(self, ids: torch.Tensor) -> torch.Tensor:
        return self.store._read(ids)

    def all(self) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.store.array))


def check_base(base: object) -> int:
    """Rows of ``base`` after checking it can back a tiered store (a CPU matrix of a supported
    dtype, an ``InMemoryFeatureStore`` of one, or a ``DiskFeatureStore``); nothing is copied."""
    if isinstance(base, DiskFeatureStore | BackingTier):
        return base.num_nodes
    if isinstance(base, InMemoryFeatureStore):
        x = base.x
    elif isinstance(base, torch.Tensor):
        x = base
    else:
        raise ConfigError(f"TieredFeatureStore: base must be a feature tensor, an InMemoryFeatureStore or a "
                          f"DiskFeatureStore, got {type(base).__name__}")
    if x.dim() != 2:
        raise DataFormatError(f"TieredFeatureStore: features must be a [num_nodes, dim] matrix, got shape "
                              f"{tuple(x.shape)}")
    if x.device.type != "cpu":
        raise ConfigError(f"TieredFeatureStore: the base features are on {x.device}; the store keeps the full "
                          "matrix in host memory and the hot rows on the cache device: pass x.cpu() (or use "
                          "InMemoryFeatureStore when every row fits on the device)")
    bit_view(x[:0].contiguous())  # dtype check
    return int(x.size(0))


def backing_tier(base: object, pin: bool) -> BackingTier:
    """The backing tier of a checked ``base`` (``check_base``): ``DiskTier`` for a
    ``DiskFeatureStore``, a ``BackingTier`` as it is, else ``HostTier`` (pinned when ``pin``)."""
    if isinstance(base, BackingTier):
        return base
    if isinstance(base, DiskFeatureStore):
        return DiskTier(base)
    return HostTier(base.x if isinstance(base, InMemoryFeatureStore) else base, pin)
