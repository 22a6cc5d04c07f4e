"""A memory cgroup that holds this process (page cache included) to a limit, for baselines.

``numpy.memmap`` has no memory budget of its own: the kernel's page cache holds whatever the
mapping touched, so on a machine with more RAM than the feature file a memmap run keeps the
whole file in memory and is not out of core at all. A memory cgroup charges the page cache to
the process that faulted the pages in and reclaims within the limit, which is what the same
memmap run meets on a machine whose RAM the features exceed. Needs root (or a delegated cgroup);
where no writable memory controller exists, :func:`memory_cgroup` yields ``None`` and a reason.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


@dataclass
class CgroupHandle:
    """The cgroup the process runs in, inside :func:`memory_cgroup`."""

    path: Path
    version: int
    limit: int

    def peak_bytes(self) -> int | None:
        """Most memory charged to the cgroup so far (page cache included), if the kernel says."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.path / name).read_text().split()[0])
        except (OSError, ValueError):
            return None


def _own_cgroup() -> tuple[int, Path] | tuple[None, str]:
    """``(version, directory)`` of this process's memory cgroup, or ``(None, reason)``."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError as e:
        return None, f"no /proc/self/cgroup ({e})"
    for line in lines:  # cgroup v1: "N:memory:/path"
        _, controllers, rel = line.split(":", 2)
        if "memory" in controllers.split(",") and (ROOT / "memory").is_dir():
            return 1, ROOT / "memory" / rel.lstrip("/")
    for line in lines:  # cgroup v2: "0::/path"
        if line.startswith("0::") and (ROOT / "cgroup.controllers").exists():
            if "memory" not in (ROOT / "cgroup.controllers").read_text().split():
                return None, "the cgroup v2 hierarchy has no memory controller"
            return 2, ROOT / line[3:].lstrip("/")
    return None, "no memory cgroup controller is mounted"


@contextlib.contextmanager
def memory_cgroup(limit: int, name: str = "gnnsys-bench") -> Iterator[tuple[CgroupHandle | None, str]]:
    """Run the body with this process (all its threads) in a new child memory cgroup limited to
    ``limit`` bytes; memory the process already holds stays charged where it was, so the limit
    covers what the body adds (page cache, new allocations). Yields ``(handle, "")``, or
    ``(None, reason)`` where no cgroup could be made (the body then runs unlimited: check)."""
    version, parent = _own_cgroup()
    if version is None:
        yield None, str(parent)
        return
    assert isinstance(parent, Path)
    child = parent / f"{name}-{os.getpid()}"
    try:
        if version == 2:
            # a v2 child of a non-root group that holds processes cannot enable controllers
            # ("no internal processes"); the limit then goes on a child of the root instead
            sub = (parent / "cgroup.subtree_control").read_text().split()
            if "memory" not in sub:
                child = ROOT / f"{name}-{os.getpid()}"
        child.mkdir(exist_ok=True)
        (child / ("memory.limit_in_bytes" if version == 1 else "memory.max")).write_text(str(int(limit)))
        (child / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as e:
        with contextlib.suppress(OSError):
            child.rmdir()
        yield None, f"cannot limit memory with a cgroup at {child} ({e.strerror or e}; needs root)"
        return
    try:
        yield CgroupHandle(child, version, int(limit)), ""
    finally:
        with contextlib.suppress(OSError):
            (parent / "cgroup.procs").write_text(str(os.getpid()))
        with contextlib.suppress(OSError):
            child.rmdir()
