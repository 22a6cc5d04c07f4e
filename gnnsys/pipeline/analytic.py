"""The traffic each scheme must move per training epoch, predicted from chunk and halo sizes.

``experiments/gnnpipe.py`` and the tests compare these with the bytes ``Comm`` counted at
every send/recv. Floats are 4 bytes; the graph-parallel weight all-reduce is counted as a ring
all-reduce moves it (``2 (P-1) / P`` of the gradient per rank), as ``Comm.all_reduce`` counts it.
"""

from __future__ import annotations

FLOAT = 4


def pipe_train_bytes(num_nodes: int, widths: list[int], stage_layers: list[list[int]], train: str = "backprop") -> int:
    """Bytes all ranks send in one GNNPipe training epoch: every stage boundary carries all
    ``N`` rows of its layer's output forward (and, with backprop, their gradients backward).

    ``widths[l+1]`` is layer ``l``'s output width; ``stage_layers`` the ``[start, stop)`` of each
    stage. SF training (``train="sf"``) has no backward half but also sends the class virtual
    nodes' rows, which ``sf_extra_rows`` counts."""
    total = 0
    for _start, stop in stage_layers[:-1]:
        total += num_nodes * widths[stop] * FLOAT
    return total * (2 if train == "backprop" else 1)


def graph_parallel_train_bytes(halo: list[int], widths: list[int], num_params: int, world: int) -> dict[str, int]:
    """Bytes all ranks send in one graph-parallel training epoch: halo rows of every layer
    ``l >= 1`` forward and their gradients backward (layer 0's input features are read once at
    setup), plus the weight-gradient all-reduce."""
    h = sum(halo)
    layers = len(widths) - 1
    halo_bytes = 2 * sum(widths[l] for l in range(1, layers)) * h * FLOAT
    allreduce = world * (2 * (world - 1) * num_params * FLOAT // world) if world > 1 else 0
    return {"halo": halo_bytes, "allreduce": allreduce, "total": halo_bytes + allreduce}
