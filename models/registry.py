"""Layer registry: ``@register_layer("name")`` and name/path resolution.

A registered layer is an ``nn.Module`` built as ``Cls(in_dim, out_dim, **kwargs)`` whose
``forward(x, edge_index, edge_weight=None)`` returns the new node states. ``edge_index`` is
a ``[2, E]`` COO tensor; a layer that sets the class attribute ``propagation`` to one of
``"sum"``, ``"mean"``, ``"gcn"`` (``gnnsys.sparse.propagation_matrix``) also accepts that
normalized sparse CSR operator in place of ``edge_index`` (then ``edge_weight`` is already in
its values), which ``GNNStack`` passes for speed.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from gnnsys.errors import ConfigError

_LAYERS: dict[str, type[nn.Module]] = {}


def register_layer(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a layer available by ``name`` (in Python and on the CLI)."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        _LAYERS[name] = cls
        cls.layer_name = name
        return cls

    return deco


def available_layers() -> list[str]:
    """Registered layer names."""
    from gnnsys.models import layers  # noqa: F401  (registers the built-ins)

    return sorted(_LAYERS)


def _load_from_spec(spec: str) -> type[nn.Module]:
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser().resolve()
        if not path.exists():
            raise ConfigError(f"layer file {path} does not exist (from --layer {spec!r})")
        mod_name = f"gnnsys_user_{path.stem}_{abs(hash(str(path)))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ConfigError(f"cannot import module {target!r} for layer {spec!r}: {e}") from e
    cls = getattr(module, attr, None)
    if cls is None:
        raise ConfigError(f"{target} has no attribute {attr!r} (from layer {spec!r})")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"layer {spec!r} is not an nn.Module subclass")
    return cls


def get_layer(name: str | type[nn.Module]) -> type[nn.Module]:
    """Resolve a layer: a registered name (``"gcn"``), ``"path/to/file.py:MyConv"``,
    ``"package.module:MyConv"``, or a class."""
    if isinstance(name, type):
        return name
    available_layers()
    if name in _LAYERS:
        return _LAYERS[name]
    if name.startswith("dgl-"):
        from gnnsys.models import dgl_adapter

        dgl_adapter.register_dgl_layers()
        if name in _LAYERS:
            return _LAYERS[name]
    if ":" in name:
        return _load_from_spec(name)
    raise ConfigError(
        f"unknown layer {name!r}. Known layers: {', '.join(available_layers())}"
        " (dgl-graphconv, dgl-sageconv, dgl-ginconv, dgl-gatconv with the dgl extra), "
        "or 'path/to/file.py:ClassName' for your own layer."
    )


# ---- layer arguments (issue 17): building a layer with the user's keyword arguments
LAYER_ARG_HINT = "--layer-arg NAME=VALUE on the command line, layer_args in TrainConfig"


def _layer_label(cls: type[nn.Module]) -> str:
    return getattr(cls, "layer_name", None) or f"{cls.__module__}:{cls.__qualname__}"


def construct_layer(cls: type[nn.Module], in_dim: int, out_dim: int, kwargs: dict[str, Any] | None = None,
                    name: str | None = None) -> nn.Module:
    """``cls(in_dim, out_dim, **kwargs)``; a constructor that does not fit (a missing required
    argument, an unknown keyword, a value it rejects) is a ``ConfigError`` naming the argument
    and the flag (``--layer-arg``) instead of a ``TypeError`` traceback."""
    kwargs = dict(kwargs or {})
    label = name or _layer_label(cls)
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        sig = None
    if sig is not None:
        params = sig.parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in kwargs if k not in params or params[k].kind is inspect.Parameter.POSITIONAL_ONLY]
        if unknown and not takes_any:
            known = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)][2:]
            raise ConfigError(f"layer {label} takes no argument {unknown[0]!r} (given by --layer-arg "
                              f"{unknown[0]}=...); its arguments: {', '.join(known) or 'none besides the two widths'}")
        try:
            sig.bind(in_dim, out_dim, **kwargs)
        except TypeError as e:
            positional = [n for n, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty
                       and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                       and n not in kwargs and n not in positional[:2]]
            if missing:
                raise ConfigError(f"layer {label} needs the argument {missing[0]!r}: pass --layer-arg "
                                  f"{missing[0]}=VALUE (layer arguments: {LAYER_ARG_HINT})") from e
            raise ConfigError(f"layer {label} cannot be built as {cls.__name__}(in_dim, out_dim, "
                              f"{', '.join(f'{k}=...' for k in kwargs)}): {e} ({LAYER_ARG_HINT})") from e
    try:
        return cls(in_dim, out_dim, **kwargs)
    except ValueError as e:  # a value the layer rejects (e.g. GAT's heads not dividing the width)
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(f"layer {label} rejected its arguments ({given or 'none'}; layer arguments: "
                          f"{LAYER_ARG_HINT}), built as ({in_dim}, {out_dim}): {e}") from e
    except TypeError as e:
        import re

        bad = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if bad and bad.group(1) in kwargs:
            raise ConfigError(f"layer {label} takes no argument {bad.group(1)!r} (given by --layer-arg "
                              f"{bad.group(1)}={kwargs[bad.group(1)]!r}): {e}") from e
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no layer arguments"
        raise ConfigError(f"layer {label} rejected its arguments ({given}; from --layer-arg): {e}") from e
# ---- end layer arguments
