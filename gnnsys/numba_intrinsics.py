"""A software prefetch for the numba kernels (an LLVM intrinsic).

Kernels that walk a list of random positions (a subgraph's adjacency lists, a batch's feature
rows, a cache's slot map) wait on one cache miss after another: the position of the next miss
is known early, but the hardware prefetcher cannot guess it. ``prefetch(a, i)`` asks for the
line of ``a[i]`` a few iterations ahead, so the misses overlap; it never faults and changes no
result (an out-of-range address is simply not fetched, but callers keep ``i`` in range).
"""

from __future__ import annotations

import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# LLVM 15+ has opaque pointers: the intrinsic's name mangles the pointer as "p0"
_PREFETCH = "llvm.prefetch.p0" if llvm_binding.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


def _emit_prefetch(context, builder, aty, ary_value, indices) -> None:
    ary = context.make_array(aty)(context, builder, ary_value)
    ptr = cgutils.get_item_pointer(context, builder, aty, ary, indices, wraparound=False, boundscheck=False)
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH)
    # read access, high temporal locality, data cache
    builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])


@intrinsic
def prefetch(typingctx, arr, i):
    """Prefetch the cache line of ``arr[i]`` (1-D array, or the first element of row ``i`` of
    a 2-D array)."""
    if not isinstance(arr, types.Array) or not isinstance(i, types.Integer):
        return None
    sig = types.void(arr, i)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        first = context.cast(builder, args[1], signature.args[1], types.intp)
        idx = [first] + [context.get_constant(types.intp, 0)] * (aty.ndim - 1)
        _emit_prefetch(context, builder, aty, args[0], idx)
        return context.get_dummy_value()

    return sig, codegen

