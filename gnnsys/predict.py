"""Predictions of a trained model (``gnnsys predict``): computing them, reading node pairs,
writing CSV or ``.npy``.

Columns by task:

- node: ``node``, ``pred`` (the class), ``prob`` ``[N, K]`` (softmax of a backprop model's
  logits) or ``score`` ``[N, K]`` (a ForwardGNN variant's summed per-layer class scores);
- link: ``src``, ``dst``, ``score`` (the pair's probability, sigmoid of the head's logit);
- graph: ``graph`` and, by target type, ``pred`` + ``prob`` ``[G, K]`` (multiclass),
  ``prob`` ``[G, T]`` (binary tasks) or ``value`` ``[G, T]`` (regression).

A CSV has one row per node / pair / graph, a header naming the columns (``prob_0``,
``prob_1``, ... for a matrix); a ``.npy`` file holds the same table as one float64 array
``[rows, columns]`` in the same column order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gnnsys.dataset import Dataset
from gnnsys.errors import DataFormatError, ModelFileError
from gnnsys.paths import atomic_write_bytes

PREDICTION_SUFFIXES = (".csv", ".npy")


@torch.no_grad()
def predict_columns(model: Any, dataset: Dataset, pairs: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The prediction columns (module docstring) of a rebuilt model: a ``GNNStack`` or a
    ForwardGNN variant (``node_scores()``, ``pair_scores(pairs)``)."""
    if not isinstance(model, nn.Module) and dataset.task == "link":  # a ForwardGNN link variant
        assert pairs is not None
        return {"src": pairs[0].numpy(), "dst": pairs[1].numpy(), "score": model.pair_scores(pairs).view(-1).numpy()}
    if not isinstance(model, nn.Module):
        scores = model.node_scores().cpu()
        return {"node": np.arange(dataset.num_nodes), "pred": scores.argmax(1).numpy(), "score": scores.numpy()}
    from gnnsys.loading import LoadingPipeline, full_batch, operator_norms
    from gnnsys.samplers.full import GraphBatchLoader

    device = next(model.parameters()).device
    model.eval()
    if dataset.task == "node":
        logits = model(full_batch(dataset, device)).cpu()
        prob = torch.softmax(logits, -1)
        return {"node": np.arange(dataset.num_nodes), "pred": prob.argmax(1).numpy(), "prob": prob.numpy()}
    if dataset.task == "link":
        assert pairs is not None
        h = model.embed(full_batch(dataset, device))
        p = pairs.to(h.device)
        chunk = 1 << 16
        logit = torch.cat([model.head.score(h, p[:, i:i + chunk]) for i in range(0, p.size(1), chunk)]).cpu()
        return {"src": pairs[0].numpy(), "dst": pairs[1].numpy(), "score": torch.sigmoid(logit).view(-1).numpy()}
    ids = torch.arange(dataset.num_graphs)
    batches = LoadingPipeline(GraphBatchLoader(dataset, ids, batch_size=256), dataset, device=device,
                              operators=operator_norms(model), backward=False, prefetch=0)
    out = torch.cat([model(b).cpu() for b in batches])
    cols: dict[str, np.ndarray] = {"graph": ids.numpy()}
    if dataset.target_type == "multiclass":
        prob = torch.softmax(out, -1)
        cols.update(pred=prob.argmax(1).numpy(), prob=prob.numpy())
    elif dataset.target_type == "binary":
        cols["prob"] = torch.sigmoid(out).numpy()
    else:
        cols["value"] = out.numpy()
    return cols


def read_pairs(path: str | Path, num_nodes: int) -> torch.Tensor:
    """Node pairs ``[2, P]`` from ``path``: a ``.npy`` array ``[P, 2]`` or ``[2, P]``, or a CSV /
    text file of two integer columns (an optional header line). ``DataFormatError`` naming
    the file for anything else, or for ids outside ``0..num_nodes-1``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataFormatError(f"--pairs {p}: no such file")
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            with p.open() as f:
                first = f.readline()
            skip = 0 if first.replace(",", " ").split() and all(
                t.lstrip("-").isdigit() for t in first.replace(",", " ").split()) else 1
            arr = np.loadtxt(p, delimiter="," if "," in first else None, skiprows=skip, dtype=np.int64, ndmin=2)
    except (ValueError, OSError) as e:
        raise DataFormatError(f"--pairs {p}: cannot read two integer columns of node ids ({e})") from e
    if arr.ndim != 2 or 2 not in arr.shape:
        raise DataFormatError(f"--pairs {p}: expected node pairs as [P, 2] or [2, P], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataFormatError(f"--pairs {p}: node ids must be integers, got {arr.dtype}")
    pairs = torch.as_tensor(arr.T if arr.shape[1] == 2 and arr.shape[0] != 2 else arr, dtype=torch.long)
    if pairs.numel() and (int(pairs.min()) < 0 or int(pairs.max()) >= num_nodes):
        raise DataFormatError(f"--pairs {p}: node ids must lie in 0..{num_nodes - 1}, got "
                              f"{int(pairs.min())}..{int(pairs.max())}")
    return pairs


def table(columns: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Header names and the float64 table ``[rows, columns]`` of ``columns``."""
    names, parts = [], []
    for k, v in columns.items():
        v = np.asarray(v)
        if v.ndim == 1:
            names.append(k)
            parts.append(v.reshape(-1, 1).astype(np.float64))
        else:
            names += [f"{k}_{j}" for j in range(v.shape[1])]
            parts.append(v.astype(np.float64))
    return names, np.hstack(parts)


def check_prediction_path(path: str | Path) -> Path:
    """``path`` when it ends in ``.csv`` or ``.npy`` and can be written (``gnnsys.paths``)."""
    from gnnsys.paths import check_output_file

    p = Path(path).expanduser()
    if p.suffix not in PREDICTION_SUFFIXES:
        raise ModelFileError(f"--out {p}: predictions are written as .csv or .npy, not {p.suffix or 'no suffix'}")
    return check_output_file(p, "--out")


def write_predictions(path: str | Path, columns: dict[str, np.ndarray]) -> Path:
    """Write ``columns`` to ``path`` (``.csv``: header + rows; ``.npy``: the float64 table),
    atomically."""
    import io

    p = check_prediction_path(path)
    names, data = table(columns)
    buf = io.BytesIO()
    if p.suffix == ".npy":
        np.save(buf, data)
    else:
        ints = [not (np.asarray(columns[k]).dtype.kind == "f") for k in columns]
        fmt = []
        for k, is_int in zip(columns, ints):
            width = 1 if np.asarray(columns[k]).ndim == 1 else np.asarray(columns[k]).shape[1]
            fmt += ["%d" if is_int else "%.9g"] * width
        np.savetxt(buf, data, delimiter=",", header=",".join(names), comments="", fmt=fmt)
    return atomic_write_bytes(p, buf.getvalue(), "--out")
