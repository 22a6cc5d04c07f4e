"""Zero-copy gather on CUDA: GPU threads read the rows the cache misses straight from pinned host
memory (PyTorch-Direct's "unified tensor" idea; GraphBolt's ``gb.index_select`` on pinned rows).

torch offers no indexing of a host tensor from a kernel (``index_select`` needs both tensors on
one device), but with CUDA's unified virtual addressing a pinned host allocation (what
``Tensor.pin_memory()`` makes, ``cudaHostAlloc``) is mapped into the device's address space at
the same address, so a kernel can load from its ``data_ptr()``. The kernel here is written in
Triton (shipped with CUDA builds of torch): one program per (row, column block) looks the row's
id up in the device slot map and copies it from the cache tier (device memory) or from the host
tier (over PCIe), into the output, in one pass and without a staging buffer.

Opt-in (``TieredFeatureStore(..., zero_copy=True)``) and unmeasured: this machine has no GPU;
``experiments/bench_cache.py --device cuda`` measures it
against the plain path (CPU ``index_select`` + pinned copy) on a GPU machine, and
``tests/test_tiered_cuda.py`` checks it bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch

_KERNEL: Any = None
_BITS = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def triton_available() -> bool:
    """True when CUDA and Triton are both usable (the zero-copy gather can run)."""
    if not torch.cuda.is_available():
        return False
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means no Triton
        return False
    return True


class _HostPointer:
    """A pinned host tensor presented to Triton as a device pointer (its UVA address)."""

    def __init__(self, t: torch.Tensor) -> None:
        self.t = t
        self.dtype = t.dtype

    def data_ptr(self) -> int:
        return self.t.data_ptr()


def _kernel() -> Any:
    """Compile (once) the Triton kernel."""
    global _KERNEL
    if _KERNEL is None:
        import triton
        import triton.language as tl

        @triton.jit
        def gather_kernel(out_ptr, cache_ptr, host_ptr, ids_ptr, slot_map_ptr, dim, BLOCK: tl.constexpr):
            row = tl.program_id(0)
            cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
            mask = cols < dim
            node = tl.load(ids_ptr + row).to(tl.int64)
            slot = tl.load(slot_map_ptr + node).to(tl.int64)
            if slot >= 0:
                v = tl.load(cache_ptr + slot * dim + cols, mask=mask)
            else:
                v = tl.load(host_ptr + node * dim + cols, mask=mask)
            tl.store(out_ptr + row.to(tl.int64) * dim + cols, v, mask=mask)

        _KERNEL = gather_kernel
    return _KERNEL


def zero_copy_gather(cache: torch.Tensor, host: torch.Tensor, ids: torch.Tensor,
                     slot_map: torch.Tensor) -> torch.Tensor:
    """Rows ``ids`` (int64, on the cache's device): ``cache[slot_map[id]]`` where the slot is
    ``>= 0``, else ``host[id]`` read over PCIe from the pinned ``host`` matrix. Bit-exact (the
    rows move as integers of their item size)."""
    if not host.is_pinned():
        raise RuntimeError("zero_copy_gather needs the host rows pinned (Tensor.pin_memory())")
    bits = _BITS[host.element_size()]
    dim = host.size(1)
    out = torch.empty((ids.numel(), dim), dtype=host.dtype, device=cache.device)
    if ids.numel() == 0:
        return out
    block = min(1024, 1 << max(dim - 1, 0).bit_length())
    grid = (ids.numel(), (dim + block - 1) // block)
    _kernel()[grid](out.view(bits), cache.view(bits), _HostPointer(host.view(bits)), ids, slot_map, dim,
                    BLOCK=block)
    return out
