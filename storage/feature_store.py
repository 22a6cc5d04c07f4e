"""``FeatureStore``: gather rows of a node-feature matrix by node id, counting what it serves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from gnnsys.errors import DataFormatError, GraphError


class FeatureStore:
    """Interface: a ``num_nodes x dim`` feature matrix read by row ids.

    ``gather(ids, device=None)`` returns the rows as a tensor; ``stats()`` reports
    rows and bytes served per tier.
    """

    tier = "base"

    def __init__(self) -> None:
        self._rows = 0
        self._bytes = 0

    @property
    def num_nodes(self) -> int:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

    def _read(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_ids(self, ids: torch.Tensor) -> torch.Tensor:
        ids = torch.as_tensor(ids)
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise GraphError(f"FeatureStore.gather: ids must be integers, got {ids.dtype}; pass node ids as an "
                             "integer tensor (torch.long)")
        ids = ids.long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_nodes):
            raise GraphError(
                f"FeatureStore.gather: ids {int(ids.min())}..{int(ids.max())} out of range "
                f"[0, {self.num_nodes}); ids are rows of this feature matrix: pass global node ids of its graph"
            )
        return ids

    def gather(self, ids: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        """Rows ``ids`` of the matrix, on ``device`` (default: where the store keeps them)."""
        ids = self._check_ids(ids)
        out = self._read(ids)
        self._rows += ids.numel()
        self._bytes += out.numel() * out.element_size()
        return out if device is None else out.to(device, non_blocking=True)

    def all(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The whole matrix (full-batch training)."""
        return self.gather(torch.arange(self.num_nodes), device)

    def stats(self) -> dict[str, dict[str, int]]:
        """Rows and bytes served, per tier."""
        return {self.tier: {"rows": self._rows, "bytes": self._bytes}}

    def reset_stats(self) -> None:
        self._rows = 0
        self._bytes = 0

    def __len__(self) -> int:
        return self.num_nodes

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_nodes={self.num_nodes}, dim={self.dim}, dtype={self.dtype})"


def _check_finite(x: torch.Tensor, what: str) -> None:
    if x.dtype.is_floating_point and x.numel() and not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x)).any(dim=-1).nonzero().flatten()
        raise DataFormatError(
            f"{what}: features contain NaN or inf in {bad.numel()} rows (first: {bad[:5].tolist()}). "
            "Clean or impute the features before loading."
        )


class InMemoryFeatureStore(FeatureStore):
    """Features held in one tensor (CPU or GPU)."""

    tier = "memory"

    def __init__(self, x: torch.Tensor, check_finite: bool = True) -> None:
        super().__init__()
        x = torch.as_tensor(x)
        if x.dim() == 1:
            x = x.unsqueeze(-1)
        if x.dim() != 2:
            raise DataFormatError(f"features must be a [num_nodes, dim] matrix, got shape {tuple(x.shape)}")
        if check_finite:
            _check_finite(x, "InMemoryFeatureStore")
        self.x = x

    @property
    def num_nodes(self) -> int:
        return self.x.size(0)

    @property
    def dim(self) -> int:
        return self.x.size(1)

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    def _read(self, ids: torch.Tensor) -> torch.Tensor:
        return self.x.index_select(0, ids.to(self.x.device))

    def all(self, device: torch.device | str | None = None) -> torch.Tensor:
        self._rows += self.num_nodes
        self._bytes += self.x.numel() * self.x.element_size()
        return self.x if device is None else self.x.to(device)


class DiskFeatureStore(FeatureStore):
    """Features in a ``.npy`` file, read through ``numpy.memmap`` (never loaded whole)."""

    tier = "disk"

    def __init__(self, path: str | os.PathLike, check_finite: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.exists():
            raise DataFormatError(f"DiskFeatureStore: no file at {self.path}")
        try:
            self.array = np.load(self.path, mmap_mode="r")
        except ValueError as e:
            raise DataFormatError(f"DiskFeatureStore: {self.path} is not a valid .npy file ({e})") from e
        if self.array.ndim != 2:
            raise DataFormatError(f"DiskFeatureStore: {self.path} holds shape {self.array.shape}, need 2-D")
        if check_finite:
            _check_finite(torch.from_numpy(np.asarray(self.array)), f"DiskFeatureStore({self.path})")

    @classmethod
    def create(cls, path: str | os.PathLike, x: torch.Tensor | np.ndarray) -> DiskFeatureStore:
        """Write ``x`` to ``path`` as ``.npy`` and open it."""
        arr = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        _check_finite(torch.from_numpy(arr), "DiskFeatureStore.create")
        np.save(path, arr)
        return cls(path)

    @property
    def num_nodes(self) -> int:
        return int(self.array.shape[0])

    @property
    def dim(self) -> int:
        return int(self.array.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return torch.from_numpy(np.empty(0, dtype=self.array.dtype)).dtype

    def _read(self, ids: torch.Tensor) -> torch.Tensor:
        idx = ids.cpu().numpy()
        # Sorted reads touch the file in order; undo the sort afterwards.
        order = np.argsort(idx, kind="stable")
        rows = np.empty((idx.size, self.dim), dtype=self.array.dtype)
        rows[order] = self.array[idx[order]]
        return torch.from_numpy(rows)
