"""GNNPipe: pipelined layer-parallel full-graph training on ``torch.distributed``, and the
graph-parallel baseline on the same code (``--trainer pipe --parallel layer|graph``).

- ``run_pipe(dataset, cfg, split)``: what ``gnnsys train --trainer pipe`` calls.
- ``LayerPipeTrainer`` (``layer_pipe``): GNNPipe, each rank a run of consecutive layers.
- ``GraphParallelTrainer`` (``graph_parallel``): each rank a METIS partition and all layers.
- ``SFPipeTrainer`` (``sf_pipe``): the pipeline with ForwardGNN SF local losses per layer.
- ``predicted_bytes`` (``analytic``): the traffic each scheme must move, from chunk and halo sizes.
"""

from gnnsys.pipeline.runner import run_pipe

__all__ = ["run_pipe"]
