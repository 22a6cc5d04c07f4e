"""Built-in loaders; importing this package registers them."""

from gnnsys.datasets.loaders import nx_loader, ogbg, ogbl, ogbn, planetoid, pyg_loader, synthetic, tu  # noqa: F401
