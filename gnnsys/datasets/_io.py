"""Shared file helpers for the dataset loaders: table reading with clear errors,
locating a dataset folder among candidate layouts, and guarded downloads."""

from __future__ import annotations

import gzip
import os
import socket
import threading
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from gnnsys.errors import DataFormatError, DatasetNotFoundError

# Errors a reader raises on a truncated, corrupted or malformed file.
_READ_ERRORS = (
    OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, pd.errors.ParserError,
    pd.errors.EmptyDataError, UnicodeDecodeError,
)


def read_table(
    path: str | os.PathLike,
    dtype: type | np.dtype | None = None,
    ncols: int | None = None,
    allow_empty: bool = False,
) -> np.ndarray:
    """Read a headerless comma-separated table (plain or ``.gz``) into a 2-D numpy array.

    TU files (``"1, 2"``) and OGB ``.csv.gz`` files both fit. ``dtype`` is the wanted
    numpy dtype; ``ncols`` the expected number of columns. Any truncation, corruption,
    ragged row or non-numeric value raises ``DataFormatError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"missing data file {path}")
    want_int = dtype is not None and np.issubdtype(np.dtype(dtype), np.integer)
    if want_int:  # fast path; on any problem re-read as float below for a precise message
        try:
            arr = pd.read_csv(path, header=None, sep=",", skipinitialspace=True, dtype=np.int64,
                              compression="infer", engine="c").to_numpy()
            if ncols is None or arr.shape[1] == ncols:
                return np.require(arr.astype(dtype, copy=False), requirements=["C", "W"])
        except _READ_ERRORS + (TypeError, OverflowError):
            pass
    try:
        float_dtype = dtype if dtype is not None and np.issubdtype(np.dtype(dtype), np.floating) else np.float64
        df = pd.read_csv(path, header=None, sep=",", skipinitialspace=True, dtype=float_dtype,
                         compression="infer", engine="c", na_filter=True)
    except pd.errors.EmptyDataError:
        if allow_empty:
            return np.empty((0, ncols or 1), dtype=dtype or np.float64)
        raise DataFormatError(f"{path}: the file is empty; re-download or re-create it") from None
    except _READ_ERRORS as e:
        raise DataFormatError(
            f"{path}: cannot be read ({type(e).__name__}: {e}); the file is truncated or corrupted — "
            "re-download or re-create it"
        ) from e
    arr = df.to_numpy()
    if ncols is not None and arr.shape[1] != ncols:
        raise DataFormatError(f"{path}: expected {ncols} columns per row, found {arr.shape[1]}")
    if want_int:
        if np.isnan(arr).any():
            row = int(np.isnan(arr).any(axis=1).nonzero()[0][0])
            raise DataFormatError(f"{path}: row {row + 1} has missing or non-numeric fields")
        if not np.array_equal(arr, np.round(arr)):
            raise DataFormatError(f"{path}: expected integers, found fractional values")
        return arr.astype(dtype)
    return np.require(arr if dtype is None else arr.astype(dtype), requirements=["C", "W"])


def read_vector(path: str | os.PathLike, dtype: type | np.dtype = np.int64, allow_empty: bool = False
                ) -> np.ndarray:
    """Read a one-column table into a 1-D array (see ``read_table``)."""
    return np.ascontiguousarray(read_table(path, dtype=dtype, ncols=1, allow_empty=allow_empty)[:, 0])


def first_existing(candidates: Iterable[Path], marker: str) -> Path | None:
    """The first folder of ``candidates`` that holds the file ``marker`` (a relative path)."""
    for c in candidates:
        if (c / marker).is_file():
            return c
    return None


def not_found(what: str, expected: Sequence[Path], hint: str = "") -> DatasetNotFoundError:
    """A ``DatasetNotFoundError`` naming the expected paths and how to point gnnsys at data."""
    paths = ", ".join(str(p) for p in expected)  # one line: the CLI prints one ``gnnsys: error:`` line
    return DatasetNotFoundError(
        f"{what}: data files not found (looked for {paths}). "
        "Set GNNSYS_DATA (or pass root= / --data-root) to the folder that holds the data"
        + (f"; {hint}" if hint else "")
    )


def downloads_enabled(download: bool | None) -> bool:
    """Whether a missing dataset may be downloaded: ``download`` if given, else not when
    ``$GNNSYS_NO_DOWNLOAD`` is set to a non-empty value other than ``0``."""
    if download is not None:
        return bool(download)
    return os.environ.get("GNNSYS_NO_DOWNLOAD", "0") in ("", "0")


def can_reach(url: str, timeout: float = 3.0) -> bool:
    """Quick connectivity check (DNS + TCP connect, bounded by ``timeout`` seconds even when name
    resolution hangs) so that an offline download fails fast instead of stalling."""
    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    ok: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)
