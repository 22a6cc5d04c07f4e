"""Built-in layers (one per file), registered on import."""

from gnnsys.models.layers.gat import GATLayer
from gnnsys.models.layers.gcn import GCNLayer
from gnnsys.models.layers.gin import GINLayer
from gnnsys.models.layers.gine import GINELayer
from gnnsys.models.layers.sage import SAGELayer

__all__ = ["GCNLayer", "SAGELayer", "GINLayer", "GATLayer", "GINELayer"]
