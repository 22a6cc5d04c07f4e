"""Paths a run writes: checked before the first epoch, written atomically.

Every file a run leaves behind (results JSON, saved model, checkpoints) is written to a
temporary name in its own folder, flushed and fsynced, then renamed over the target, and the
folder is fsynced: a reader sees the old file or the new one, never half of one, even if the
process is killed or the machine loses power mid-write.

``check_output_file`` / ``check_output_dir`` run before any data is loaded: the folder must
exist (a checkpoint folder itself is created), be writable (a probe file is created and
removed there) and have room (``min_free`` bytes), so that a typo or a full disk is a clear
error at once instead of a traceback after hours of training.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gnnsys.errors import OutputPathError

#: Free space a results or model file needs before the run starts (the model's own size is
#: checked again when it is written).
MIN_FREE_BYTES = 1 << 20


def _probe(folder: Path, flag: str, target: Path) -> None:
    """Create, write, fsync and remove a small file in ``folder``."""
    try:
        fd, name = tempfile.mkstemp(prefix=".gnnsys-probe-", dir=folder)
    except OSError as e:
        raise OutputPathError(f"{flag} {target}: cannot create files in {folder} ({e.strerror or e}); "
                              "choose a writable location") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise OutputPathError(f"{flag} {target}: writing to {folder} failed ({e.strerror or e}); "
                              "free some space or choose another location") from e
    finally:
        try:
            os.unlink(name)
        except OSError:
            pass


def check_free(folder: Path, need: int, flag: str, target: Path) -> None:
    """``OutputPathError`` when the filesystem of ``folder`` has fewer than ``need`` bytes free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError as e:
        raise OutputPathError(f"{flag} {target}: cannot stat {folder} ({e.strerror or e})") from e
    if free < need:
        raise OutputPathError(f"{flag} {target}: the disk holding {folder} is full ({free:,} bytes free, "
                              f"{need:,} needed); free some space or choose another location")


def check_output_file(path: str | os.PathLike, flag: str, min_free: int = MIN_FREE_BYTES) -> Path:
    """``path`` as a ``Path`` once it is known that a file can be written there: its folder
    exists and is writable and has ``min_free`` bytes free; the path is not a folder or a
    device. Else ``OutputPathError`` naming ``flag``, the path and the fix."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise OutputPathError(f"{flag} {p} is a folder; give a file name inside it (e.g. {p / 'out'})")
    if p.exists() and not p.is_file():
        raise OutputPathError(f"{flag} {p} exists and is not a regular file; choose another path")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise OutputPathError(f"{flag} {p}: the folder {parent} {what}; create it first or choose another path")
    _probe(parent, flag, p)
    check_free(parent, min_free, flag, p)
    return p


def check_output_dir(path: str | os.PathLike, flag: str, min_free: int = MIN_FREE_BYTES) -> Path:
    """``path`` as a folder the run can write into: created when missing (its parent must
    exist), writable, with ``min_free`` bytes free. Else ``OutputPathError``."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{flag} {p} exists and is not a folder; choose another path")
    if not p.exists():
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            what = "is not a folder" if parent.exists() else "does not exist"
            raise OutputPathError(f"{flag} {p}: its parent folder {parent} {what}; create it first or choose "
                                  "another path")
        try:
            p.mkdir()
        except OSError as e:
            raise OutputPathError(f"{flag} {p}: cannot create the folder ({e.strerror or e}); choose a writable "
                                  "location") from e
    _probe(p, flag, p)
    check_free(p, min_free, flag, p)
    return p


def fsync_dir(folder: Path) -> None:
    """fsync a folder (the rename of a file in it becomes durable); a no-op where folders
    cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, or of a new file under the current umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, flag: str = "") -> Path:
    """Write ``data`` to ``path`` atomically (temporary name, fsync, rename, fsync of the
    folder). A failure (a full disk) leaves any earlier ``path`` untouched and raises
    ``OutputPathError``."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    check_free(folder, len(data) + 4096, flag or "writing", p)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, _file_mode(p))  # mkstemp's 0600 -> what a plain open() would have given
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputPathError(f"{(flag + ' ') if flag else ''}{p}: writing failed ({e.strerror or e}); "
                              "the previous file, if any, is unchanged") from e
    fsync_dir(folder)
    return p


def torch_bytes(obj: Any) -> bytes:
    """``obj`` serialized by ``torch.save`` (to write it with ``atomic_write_bytes``)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def check_run_outputs(config: Any) -> None:
    """Check every path a ``TrainConfig`` run will write, before any data is loaded:
    ``out``, ``save_model``, ``checkpoint_dir`` (created when missing) and a
    ``saint_norm_cache`` that does not exist yet (the run writes it)."""
    if config.out:
        check_output_file(config.out, "--out")
    if config.save_model:
        check_output_file(config.save_model, "--save-model")
    if config.checkpoint_dir:
        check_output_dir(config.checkpoint_dir, "--checkpoint-dir")
    cache = config.saint_norm_cache
    if cache and config.sampler != "full" and not Path(cache).expanduser().exists():
        check_output_file(cache, "--saint-norm-cache")
