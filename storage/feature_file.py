"""Feature files: a ``num_rows x dim`` matrix in ``.npy`` format, read by the disk tier row by
row, and a chunked writer that turns a user's own matrix into one without loading it whole.

    from gnnsys.storage import write_feature_file
    write_feature_file("feats.npy", my_matrix)                  # numpy / memmap / torch / h5py dataset
    write_feature_file("feats.npy", chunks(), num_rows=n)       # any iterable of [rows, dim] chunks

    with FeatureFileWriter("feats.npy", num_rows=n, dim=768) as w:   # or write the rows yourself
        for block in my_blocks():
            w.write(block)

The file is written under a temporary name, ``fsync``-ed and renamed, so a crash or a full disk
never leaves a file that looks complete. Its header is padded so the rows start at byte 4096;
``numpy.load`` reads it as any ``.npy``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gnnsys.storage.disk_io import PAGE
from numpy.lib import format as npy_format

from gnnsys.errors import DataFormatError

_SIZES = (1, 2, 4, 8)
DEFAULT_CHUNK_ROWS = 1 << 16


def _check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.hasobject or dtype.fields is not None or dtype.kind in "cUSVMm" or dtype.itemsize not in _SIZES:
        raise DataFormatError(f"{where}: features of dtype {dtype} are not supported; use a numeric dtype of 1, 2, "
                              "4 or 8 bytes (float32 is the usual one)")


def torch_dtype(dtype: np.dtype) -> torch.dtype:
    """The torch dtype of a numpy dtype (``bool`` and numeric dtypes)."""
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


@dataclass(frozen=True)
class FeatureFile:
    """A checked ``.npy`` feature file: ``num_rows x dim`` rows of ``dtype`` from byte ``offset``."""

    path: Path
    num_rows: int
    dim: int
    dtype: np.dtype
    offset: int
    file_size: int

    @property
    def row_bytes(self) -> int:
        """Bytes of one row."""
        return self.dim * self.dtype.itemsize

    @property
    def data_bytes(self) -> int:
        """Bytes of all rows."""
        return self.num_rows * self.row_bytes

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch_dtype(self.dtype)

    def identity(self) -> dict[str, Any]:
        """What a packed copy of these rows depends on: the file (path, inode, size, mtime) and
        its layout. A packed file records it and is rebuilt when it changes."""
        st = os.stat(self.path)
        return {"path": str(self.path.resolve()), "inode": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                "rows": self.num_rows, "dim": self.dim, "dtype": self.dtype.str, "offset": self.offset}

    @classmethod
    def open(cls, path: str | os.PathLike, num_rows: int | None = None, dim: int | None = None,
             dtype: Any = None) -> FeatureFile:
        """Read and check the header of ``path``; with ``num_rows`` / ``dim`` / ``dtype`` given,
        the file must match them (a feature file must have one row per node of the graph).
        Raises ``DataFormatError`` naming the mismatch and the fix."""
        path = Path(path)
        if not path.is_file():
            raise DataFormatError(f"feature file {path} does not exist (pass an .npy file written with np.save or "
                                  "gnnsys.storage.write_feature_file)")
        size = path.stat().st_size
        try:
            with open(path, "rb") as f:
                version = npy_format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dt = npy_format.read_array_header_1_0(f)
                else:
                    shape, fortran, dt = npy_format.read_array_header_2_0(f)
                offset = f.tell()
        except (ValueError, OSError, EOFError) as e:
            raise DataFormatError(f"feature file {path} is not a valid .npy file ({e}); write it with np.save or "
                                  "gnnsys.storage.write_feature_file") from None
        where = f"feature file {path}"
        if fortran:
            raise DataFormatError(f"{where} is stored column-major (Fortran order); rows must be contiguous: rewrite "
                                  "it with write_feature_file(path, np.ascontiguousarray(x)) (chunked: no full copy)")
        if len(shape) != 2:
            raise DataFormatError(f"{where} holds an array of shape {shape}; features must be a [num_nodes, dim] "
                                  "matrix (reshape a 1-D vector to [n, 1])")
        _check_dtype(dt, where)
        ff = cls(path, int(shape[0]), int(shape[1]), np.dtype(dt), int(offset), int(size))
        need = offset + ff.data_bytes
        if size < need:
            raise DataFormatError(f"{where} is truncated: {size} bytes, but its header promises {shape[0]} rows of "
                                  f"{ff.row_bytes} bytes ({need} bytes); the copy or write was cut short: write it "
                                  "again")
        if num_rows is not None and ff.num_rows != num_rows:
            raise DataFormatError(f"{where} has {ff.num_rows} rows but the graph has {num_rows} nodes; a feature "
                                  "file needs one row per node, in node-id order")
        if dim is not None and ff.dim != dim:
            raise DataFormatError(f"{where} has {ff.dim} columns, expected {dim}")
        if dtype is not None:
            want = np.dtype(dtype) if not isinstance(dtype, torch.dtype) else torch.empty(0, dtype=dtype).numpy().dtype
            if ff.dtype != want:
                raise DataFormatError(f"{where} holds {ff.dtype} rows, expected {want}; convert it with "
                                      f"write_feature_file(new_path, np.load(path, mmap_mode='r'), dtype='{want}')")
        return ff


def _header(num_rows: int, dim: int, dtype: np.dtype) -> bytes:
    """A ``.npy`` (v1.0) header padded so that the data starts at byte ``PAGE``."""
    d = {"descr": npy_format.dtype_to_descr(dtype), "fortran_order": False, "shape": (int(num_rows), int(dim))}
    body = repr(d).encode("latin1")
    pad = PAGE - 10 - len(body) - 1
    if pad < 0:  # pragma: no cover - a 4 KiB header always fits a 2-D shape
        raise DataFormatError("feature file header too long")
    h = body + b" " * pad + b"\n"
    return npy_format.MAGIC_PREFIX + bytes([1, 0]) + len(h).to_bytes(2, "little") + h


class FeatureFileWriter:
    """Write a feature file chunk by chunk (rows in order), atomically.

    Args:
        path: the ``.npy`` file to create (its folder must be writable).
        num_rows: rows the file will hold (``None``: as many as are written).
        dim: columns (``None``: from the first chunk).
        dtype: the file's dtype (``None``: the first chunk's; chunks of another dtype are cast
            only when ``dtype`` is given explicitly, else refused).
        check_finite: refuse NaN / inf rows (a chunk at a time).

    ``write(chunk)`` appends rows; ``close()`` checks the count, ``fsync``-s, renames the
    temporary file into place and returns the ``FeatureFile``. On an error (or ``abort()``) the
    temporary file is removed: nothing half-written is left at ``path``.
    """

    def __init__(self, path: str | os.PathLike, num_rows: int | None = None, dim: int | None = None,
                 dtype: Any = None, check_finite: bool = True) -> None:
        from gnnsys.storage.disk_io import _open, _os_error

        self.path = Path(path)
        self.num_rows, self.dim = num_rows, dim
        self.cast = dtype is not None
        self.dtype = None if dtype is None else np.dtype(dtype)
        if self.dtype is not None:
            _check_dtype(self.dtype, f"feature file {self.path}")
        self.check_finite = check_finite
        self.rows = 0
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}-{id(self):x}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = _open(str(self.tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        except OSError as e:
            raise _os_error(e, self.tmp, "create") from None
        self._offset = PAGE

    def write(self, chunk: Any) -> None:
        """Append ``chunk`` (``[rows, dim]``: numpy, torch, or anything ``np.asarray`` takes)."""
        from gnnsys.storage.disk_io import write_at

        try:
            a = chunk.detach().cpu().numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk)
            if a.ndim == 1 and self.dim in (None, 1):
                a = a.reshape(-1, 1)
            if a.ndim != 2:
                raise DataFormatError(f"write_feature_file: a chunk of shape {a.shape}; chunks are [rows, dim]")
            if self.dim is None:
                self.dim = int(a.shape[1])
            if a.shape[1] != self.dim:
                raise DataFormatError(f"write_feature_file: a chunk has {a.shape[1]} columns, the file {self.dim}")
            if self.dtype is None:
                self.dtype = a.dtype
                _check_dtype(self.dtype, f"feature file {self.path}")
            if a.dtype != self.dtype:
                if not self.cast:
                    raise DataFormatError(f"write_feature_file: a chunk of {a.dtype} in a file of {self.dtype}; pass "
                                          "dtype= to convert explicitly")
                a = a.astype(self.dtype)
            if self.num_rows is not None and self.rows + a.shape[0] > self.num_rows:
                raise DataFormatError(f"write_feature_file: more than the {self.num_rows} rows declared")
            if self.check_finite and a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
                bad = np.flatnonzero(~np.isfinite(a).all(axis=1)) + self.rows
                raise DataFormatError(f"write_feature_file: NaN or inf in rows {bad[:5].tolist()} "
                                      f"({bad.size} in this chunk); clean or impute them first")
            a = np.ascontiguousarray(a)
            write_at(self.fd, self.tmp, a.reshape(-1).view(np.uint8), self._offset)
            self._offset += a.nbytes
            self.rows += a.shape[0]
        except BaseException:
            self.abort()
            raise

    def close(self) -> FeatureFile:
        """Finish the file (see the class docstring)."""
        from gnnsys.storage.disk_io import commit_file, write_at

        try:
            if self.num_rows is not None and self.rows != self.num_rows:
                raise DataFormatError(f"write_feature_file: {self.rows} rows written, {self.num_rows} declared; "
                                      "the file was not created")
            if self.dim is None or self.dtype is None:
                raise DataFormatError("write_feature_file: no rows were written; the file was not created")
            write_at(self.fd, self.tmp, np.frombuffer(_header(self.rows, self.dim, self.dtype), np.uint8), 0)
        except BaseException:
            self.abort()
            raise
        commit_file(self.fd, self.tmp, self.path)
        self.fd = -1
        return FeatureFile.open(self.path)

    def abort(self) -> None:
        """Drop the temporary file (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> FeatureFileWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_feature_file(path: str | os.PathLike, source: Any, *, num_rows: int | None = None, dtype: Any = None,
                       chunk_rows: int = DEFAULT_CHUNK_ROWS, check_finite: bool = True) -> FeatureFile:
    """Write ``source`` to the feature file ``path`` a chunk at a time (never loading it whole).

    ``source``: a matrix-like with ``shape`` and row slicing (numpy array or ``memmap``, torch
    tensor, h5py / zarr dataset: ``chunk_rows`` rows are read at a time) or an iterable of
    ``[rows, dim]`` chunks (give ``num_rows`` to have the count checked). ``dtype`` converts
    explicitly; otherwise the source's dtype is kept. Returns the checked ``FeatureFile``."""
    if chunk_rows < 1:
        raise DataFormatError(f"write_feature_file: chunk_rows must be >= 1, got {chunk_rows}")
    shape = getattr(source, "shape", None)
    if shape is not None and hasattr(source, "__getitem__"):
        if len(shape) not in (1, 2):
            raise DataFormatError(f"write_feature_file: source of shape {tuple(shape)}; features are [num_nodes, dim]")
        n = int(shape[0])
        dim = int(shape[1]) if len(shape) == 2 else 1
        if num_rows is not None and num_rows != n:
            raise DataFormatError(f"write_feature_file: the source has {n} rows, num_rows={num_rows}")
        chunks: Iterable[Any] = (source[i:i + chunk_rows] for i in range(0, n, chunk_rows))
        writer = FeatureFileWriter(path, n, dim, dtype, check_finite)
    else:
        chunks = source
        writer = FeatureFileWriter(path, num_rows, None, dtype, check_finite)
    with writer:
        for c in chunks:
            writer.write(c)
    return FeatureFile.open(path)
