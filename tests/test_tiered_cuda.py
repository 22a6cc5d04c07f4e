"""The tiered store with its cache tier on CUDA, and the zero-copy gather of pinned host rows.

Skipped without a GPU (as ``test_cuda.py``). ``GNNSYS_TEST_DEVICE=cpu`` runs the device-agnostic
tests on the CPU to check the tests themselves; the zero-copy tests need CUDA and Triton."""

import os

import numpy as np
import pytest
import torch
from gnnsys.storage import ORACLE_POLICIES, DiskFeatureStore, TieredFeatureStore
from gnnsys.storage.uva import triton_available, zero_copy_gather

from gnnsys.errors import ConfigError

DEVICE = os.environ.get("GNNSYS_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="no CUDA device on this machine")
needs_triton = pytest.mark.skipif(not triton_available(), reason="zero-copy gather needs CUDA and Triton")
N, D = 5000, 33


def batches(num=20, seed=0):
    rng = np.random.default_rng(seed)
    w = (np.arange(N) + 1.0) ** -0.8
    w /= w.sum()
    out = [torch.from_numpy(rng.choice(N, int(rng.integers(100, 900)), replace=False, p=w)) for _ in range(num)]
    return out + [torch.tensor([3, 3, 9, 1]), torch.zeros(0, dtype=torch.long), torch.arange(N)]


def check_store(x, name, cap, zero_copy, **kw):
    bs = batches()
    if name in ORACLE_POLICIES:
        kw["trace"] = bs
    store = TieredFeatureStore(x, cap, name, cache_device=DEVICE, zero_copy=zero_copy, **kw)
    assert store.cache_rows.device.type == torch.device(DEVICE).type
    for t, b in enumerate(bs):
        store.plan(bs[t:t + store.lookahead])
        ids = b.to(DEVICE) if t % 2 else b  # ids from a GPU sampler or from the CPU
        out = store.gather(ids)
        assert out.device.type == torch.device(DEVICE).type
        assert torch.equal(out.cpu().view(torch.int32), x[b].view(torch.int32)), (name, cap, t)
    if store.slot_of_device is not None:
        assert torch.equal(store.slot_of_device.cpu(), torch.from_numpy(store.slot_of))
    held = store.cached_ids()
    live = np.flatnonzero(held >= 0)
    assert torch.equal(store.cache_rows[torch.from_numpy(live).to(DEVICE)].cpu(), x[torch.from_numpy(held[live])])
    return store


@pytest.mark.parametrize("name", ("static-saint", "lru", "s3fifo", "hybrid", "planned", "belady"))
@pytest.mark.parametrize("cap", (0, 1, 700, N))
def test_cuda_cache_bit_identical(name, cap):
    x = torch.randn(N, D)
    counts = torch.rand(N)
    store = check_store(x, name, cap, zero_copy=False, counts=counts, window=4)
    s = store.stats()
    assert s["cache"]["device"].startswith(DEVICE)
    if torch.cuda.is_available():
        assert s["host"]["pinned"]


@needs_triton
@pytest.mark.parametrize("name", ("static-saint", "s3fifo", "planned"))
@pytest.mark.parametrize("cap", (0, 1, 700, N))
def test_zero_copy_store_bit_identical(name, cap):
    x = torch.randn(N, D)
    store = check_store(x, name, cap, zero_copy=True, counts=torch.rand(N), window=4)
    assert store.zero_copy


@needs_triton
@pytest.mark.parametrize("dtype", (torch.float32, torch.float16, torch.bfloat16, torch.float64))
def test_zero_copy_gather_kernel(dtype):
    host = torch.randn(N, D).to(dtype).pin_memory()
    cache = torch.randn(50, D).to(dtype).cuda()
    slot_map = torch.full((N,), -1, dtype=torch.int32)
    cached = torch.arange(0, 500, 10)
    slot_map[cached] = torch.arange(50, dtype=torch.int32)
    ids = torch.tensor([0, 1, 10, 4999, 10, 490, 7])
    out = zero_copy_gather(cache, host, ids.cuda(), slot_map.cuda())
    want = host[ids].clone()
    hit = slot_map[ids] >= 0
    want[hit] = cache.cpu()[slot_map[ids][hit].long()]
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[host.element_size()]
    assert torch.equal(out.cpu().view(bits), want.view(bits))
    assert zero_copy_gather(cache, host, ids[:0].cuda(), slot_map.cuda()).shape == (0, D)


@needs_triton
def test_zero_copy_refuses_a_disk_tier(tmp_path):
    disk = DiskFeatureStore.create(tmp_path / "x.npy", torch.randn(N, D).numpy())
    with pytest.raises(ConfigError, match="disk tier has none"):
        TieredFeatureStore(disk, 10, "lru", cache_device=DEVICE, zero_copy=True)
    store = TieredFeatureStore(disk, 10, "lru", cache_device=DEVICE)  # the plain path over the disk tier
    assert not store.zero_copy and torch.equal(store.gather(torch.tensor([4, 2])).cpu(), disk.gather([4, 2]))
