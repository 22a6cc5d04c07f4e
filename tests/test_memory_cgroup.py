"""The memory cgroup that holds bench_disk's memmap baseline to the memory budget."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from gnnsys.experiments import memory_cgroup as mc


def _memory_line() -> str:
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    return next((line for line in lines if ":memory:" in line), lines[-1])


def test_no_controller_yields_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(mc, "ROOT", tmp_path)  # no controller mounted there
    with mc.memory_cgroup(1 << 30) as (cg, why):
        assert cg is None
        assert "cgroup" in why


def test_unwritable_cgroup_yields_the_reason(tmp_path, monkeypatch):
    (tmp_path / "memory" / "me").mkdir(parents=True)
    monkeypatch.setattr(mc, "ROOT", tmp_path)
    monkeypatch.setattr(mc, "_own_cgroup", lambda: (1, tmp_path / "memory" / "me"))
    # a plain directory stands in for the hierarchy; the limit's write fails as it does for a
    # user without permission
    real_write = Path.write_text

    def deny(self, data, *a, **k):
        if self.name in ("memory.limit_in_bytes", "cgroup.procs"):
            raise PermissionError(13, "Permission denied")
        return real_write(self, data, *a, **k)

    monkeypatch.setattr(Path, "write_text", deny)
    with mc.memory_cgroup(1 << 30) as (cg, why):
        assert cg is None and "needs root" in why
    assert not any(p.name.startswith("gnnsys-bench") for p in (tmp_path / "memory" / "me").iterdir())


def test_limit_holds_the_page_cache_and_the_process_returns(tmp_path):
    """Where this process may make a memory cgroup (root): inside it the limit is set and the
    page cache of a file read there stays under it; afterwards the process is back where it was."""
    before = _memory_line()
    limit = 64 << 20
    path = tmp_path / "big.bin"
    block = np.random.default_rng(0).bytes(1 << 20)
    with open(path, "wb") as f:  # 192 MB: three times the limit
        for _ in range(192):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    with mc.memory_cgroup(limit, name="gnnsys-test") as (cg, why):
        if cg is None:
            pytest.skip(why)
        assert f"gnnsys-test-{os.getpid()}" in _memory_line()
        name = "memory.limit_in_bytes" if cg.version == 1 else "memory.max"
        assert int((cg.path / name).read_text()) <= limit
        with open(path, "rb") as f:  # all of it through the page cache, 1 MB at a time
            while f.read(1 << 20):
                pass
        peak = cg.peak_bytes()
        assert peak is not None and 0 < peak <= limit
    assert _memory_line() == before
    assert not cg.path.exists()
