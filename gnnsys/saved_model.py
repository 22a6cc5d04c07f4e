"""Saved models (``--save-model``): the trained weights and what rebuilds them.

A model file is a ``torch.save`` dict of tensors and plain values, read back with
``torch.load(weights_only=True)``:

- ``format`` / ``version``: ``"gnnsys-model"`` / 1;
- ``config``: the resolved ``TrainConfig`` as JSON (layer, dimensions, depth, layer
  arguments, trainer, seed, split: everything that rebuilds the model and its split); a user
  layer ``file.py:Cls`` is stored with the file's absolute path;
- ``spec``: the same facts spelled out for a reader (layer and where it comes from, input,
  hidden and output widths, depth, task, layer arguments);
- ``dataset``: the signature of the dataset it was trained on (``Dataset.signature``);
- ``folds``: one entry per trained model (one, or one per CV fold): ``kind`` (``"stack"``
  for a backprop ``GNNStack``, ``"forward"`` for a ForwardGNN variant) and its weights;
- ``scores``: the metric and the ``val`` / ``test`` scores training reported (per fold too).

``SavedModel.load(path)`` reads a file; ``evaluate(dataset)`` recomputes the validation and
test scores on the same split (equal to what training reported), ``predict(dataset, pairs)``
gives node classes and probabilities, link scores for given pairs, or graph predictions.
"""

from __future__ import annotations

import json
import statistics
import warnings
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.errors import ConfigError, ModelFileError
from gnnsys.paths import atomic_write_bytes, torch_bytes

FORMAT = "gnnsys-model"
VERSION = 1
#: Signature fields a dataset must share with the model's (the model's tensors depend on them).
DIMENSIONS = ("task", "num_features", "num_classes", "feature_kind", "target_type")


# ----------------------------------------------------------------------------- layer names
def layer_reference(layer: Any) -> str:
    """``layer`` as a string that imports it again from another process: a registered name,
    ``/abs/path/file.py:Cls`` (a relative file path made absolute) or ``module:Cls``.
    ``ConfigError`` for a class defined in ``__main__`` or a notebook (nothing to import)."""
    if layer is None:
        raise ConfigError("no layer to save")
    if isinstance(layer, type):
        mod, name = layer.__module__, layer.__qualname__
        if mod == "__main__" or "<locals>" in name:
            raise ConfigError(f"--save-model: the layer class {name} is defined in {mod} and cannot be imported "
                              "when the model is loaded; move it into a file and pass 'path/to/file.py:"
                              f"{name}' (or 'package.module:{name}')")
        return f"{mod}:{name}"
    spec = str(layer)
    if ":" in spec:
        where, _, cls = spec.rpartition(":")
        if where.endswith(".py"):
            return f"{Path(where).expanduser().resolve()}:{cls}"
    return spec


def check_saveable(cfg: TrainConfig, dataset: Dataset) -> None:
    """``ConfigError`` before the first epoch when ``cfg.save_model`` cannot be honoured for
    this run (a layer class that cannot be re-imported)."""
    if cfg.save_model:
        layer_reference(cfg.layer)


def config_record(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg`` as plain JSON values, with the layer as ``layer_reference`` spells it."""
    d = json.loads(json.dumps(cfg.to_dict(), default=str))
    d["layer"] = layer_reference(cfg.layer)
    return d


def spec_record(cfg: TrainConfig, dataset: Dataset) -> dict[str, Any]:
    """What rebuilds the model, for a reader: layer and its source, widths, depth, arguments."""
    ref = layer_reference(cfg.layer)
    where, _, _ = ref.rpartition(":")
    source = "file" if where.endswith(".py") else "module" if where else "registry"
    layer_args = {**(cfg.extra.get("layer_kwargs") or {}), **(getattr(cfg, "layer_args", None) or {})}
    return json.loads(json.dumps({
        "layer": ref, "layer_source": source, "layer_args": layer_args, "trainer": cfg.trainer,
        "forward_variant": cfg.forward_variant, "in_dim": dataset.num_features, "hidden": cfg.hidden,
        "out_dim": dataset.num_classes, "layers": cfg.layers, "task": dataset.task, "norm": cfg.norm,
        "residual": cfg.residual, "link_head": cfg.link_head, "readout": cfg.readout,
    }, default=str))


# ---------------------------------------------------------------------------------- write
def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_cpu(v) for v in obj]
    return obj


def capture(model: Any) -> dict[str, Any]:
    """A trained model's entry in ``folds``: a ``GNNStack``'s state dict, or a ForwardGNN
    variant's ``export()``."""
    if isinstance(model, nn.Module):
        return {"kind": "stack", "weights": _cpu(model.state_dict())}
    return {"kind": "forward", "weights": _cpu(model.export())}


def save_model(path: str | Path, models: list[dict[str, Any] | None], cfg: TrainConfig, dataset: Dataset,
               result: dict[str, Any]) -> Path:
    """Write the model file (atomically) for the trained ``models`` (``capture`` entries, one
    per fold) of a run whose ``train`` result is ``result``."""
    if any(m is None for m in models):
        raise ModelFileError("--save-model: a fold's trained model is missing from the run (resumed from a "
                             "checkpoint written without it); rerun without --resume")
    payload = {
        "format": FORMAT, "version": VERSION, "config": json.dumps(config_record(cfg)),
        "spec": json.dumps(spec_record(cfg, dataset)), "dataset": json.dumps(dataset.signature()),
        "folds": models,
        "scores": json.dumps({"metric": result["metric"], "val": result["val"], "test": result["test"],
                              "runs": [{"val": r["val"], "test": r["test"]} for r in result["runs"]]}),
    }
    return atomic_write_bytes(path, torch_bytes(payload), "--save-model")


# ----------------------------------------------------------------------------------- read
def _describe(sig: dict[str, Any]) -> str:
    return (f"{sig.get('name')} (task {sig.get('task')}, {sig.get('num_features')} features, "
            f"{sig.get('num_classes')} outputs, {sig.get('num_nodes')} nodes)")


class SavedModel:
    """A model file read back (``load``): rebuild, evaluate and predict with it."""

    def __init__(self, path: Path, config: TrainConfig, spec: dict[str, Any], signature: dict[str, Any],
                 folds: list[dict[str, Any]], scores: dict[str, Any]) -> None:
        self.path, self.config, self.spec, self.signature = path, config, spec, signature
        self.folds, self.scores = folds, scores

    @property
    def task(self) -> str:
        """The task the model was trained for (``node``, ``link`` or ``graph``)."""
        return self.signature["task"]

    @classmethod
    def load(cls, path: str | Path) -> SavedModel:
        """Read ``path`` (``torch.load(weights_only=True)``); ``ModelFileError`` when it is not
        a gnnsys model file."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise ModelFileError(f"--model {p}: no such file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                d = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - a foreign or torn file shows up as any of several errors
            raise ModelFileError(f"--model {p} is not a gnnsys model file (it cannot be read back: "
                                 f"{type(e).__name__}: {str(e)[:160]}); pass a file written by --save-model") from e
        if isinstance(d, dict) and d.get("format") == "gnnsys-checkpoint":
            raise ModelFileError(f"--model {p} is a gnnsys training checkpoint, not a saved model; resume it with "
                                 "--checkpoint-dir/--resume, or train with --save-model")
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ModelFileError(f"--model {p} is not a gnnsys model file; pass a file written by --save-model")
        if d.get("version") != VERSION:
            raise ModelFileError(f"--model {p} is a gnnsys model of format version {d.get('version')}; this gnnsys "
                                 f"reads version {VERSION}")
        raw = json.loads(d["config"])
        known = {f.name for f in fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in raw.items() if k in known})
        config = replace(config, out=None, save_model=None, checkpoint_dir=None, resume=None, quiet=True)
        return cls(p, config, json.loads(d["spec"]), json.loads(d["dataset"]), list(d["folds"]),
                   json.loads(d["scores"]))

    # ------------------------------------------------------------------ checks
    def check_dataset(self, dataset: Dataset) -> None:
        """``ModelFileError`` naming both when ``dataset`` does not have the model's dimensions."""
        sig = dataset.signature()
        keys = list(DIMENSIONS)
        if self.spec.get("in_dim") is None or sig["num_features"] is None or self.task == "link":
            keys.append("num_nodes")  # node embeddings (featureless) and link heads index nodes
        diff = [k for k in keys if sig.get(k) != self.signature.get(k)]
        if diff:
            what = ", ".join(f"{k} {self.signature.get(k)!r} vs {sig.get(k)!r}" for k in diff)
            raise ModelFileError(f"model {self.path} was trained on {_describe(self.signature)}; dataset "
                                 f"{_describe(sig)} does not fit it ({what}); use a dataset of the model's "
                                 "dimensions")

    def _config(self, device: str) -> TrainConfig:
        """The training config on ``device`` (validated: ``--device`` gets train's checks)."""
        cfg = replace(self.config, device=device)
        cfg.validate()
        return cfg

    def _build(self, entry: dict[str, Any], dataset: Dataset, cfg: TrainConfig) -> Any:
        """The trained model of one fold entry, on ``cfg.device``."""
        try:
            if entry["kind"] == "stack":
                from gnnsys.api import model_for

                model = model_for(dataset, cfg)
                model.load_state_dict(entry["weights"])
                return model.to(cfg.device).eval()
            from gnnsys.trainers.forward import ForwardTrainer

            impl = ForwardTrainer(cfg).build(dataset)
            impl.restore(entry["weights"])
            return impl
        except ConfigError as e:
            src = self.spec.get("layer_source")
            hint = (f" (a user layer from a {src}: put it back where it was, or make it importable)"
                    if src in ("file", "module") else "")
            raise ModelFileError(f"model {self.path}: its layer {self.spec.get('layer')!r} cannot be rebuilt{hint}: "
                                 f"{e}") from e

    # --------------------------------------------------------------- evaluate
    def evaluate(self, dataset: Dataset, device: str = "cpu") -> dict[str, Any]:
        """Validation and test scores of every fold's model on its split (the split training
        used, rebuilt from the saved config), and their means under ``val`` / ``test``."""
        from gnnsys.api import run_splits

        self.check_dataset(dataset)
        cfg = self._config(device)
        splits = run_splits(dataset, cfg)
        if len(splits) != len(self.folds):
            raise ModelFileError(f"model {self.path} holds {len(self.folds)} trained model(s), but the run's split of "
                                 f"{dataset.name} has {len(splits)} fold(s)")
        runs = []
        for fold, (entry, split) in enumerate(zip(self.folds, splits)):
            res = self._evaluate_one(entry, dataset, split, cfg)
            runs.append({"fold": fold, "val": res["valid"], "test": res["test"]})
        vals, tests = [r["val"] for r in runs], [r["test"] for r in runs]
        # statistics.fmean, as train() averages: the same value to the last bit
        return {"model": str(self.path), "dataset": dataset.name, "task": dataset.task,
                "metric": dataset.metric, "val": statistics.fmean(vals), "test": statistics.fmean(tests),
                "runs": runs, "trained": self.scores}

    def _evaluate_one(self, entry: dict[str, Any], dataset: Dataset, split: dict[str, torch.Tensor],
                      cfg: TrainConfig) -> dict[str, float]:
        from gnnsys.api import _with_split

        if entry["kind"] == "stack":
            from gnnsys.trainers.backprop import BackpropTrainer

            model = self._build(entry, dataset, cfg)
            return BackpropTrainer(cfg).evaluate(model, dataset, split)
        ds = _with_split(dataset, split) if split is not dataset.split else dataset
        impl = self._build(entry, ds, cfg)
        if hasattr(impl, "accuracies"):  # greedy node variants: the summed scores of the layer stack
            return impl.accuracies(impl.node_scores())
        return impl.evaluate()

    # ---------------------------------------------------------------- predict
    def predict(self, dataset: Dataset, pairs: torch.Tensor | None = None, fold: int | None = None,
                device: str = "cpu") -> dict[str, np.ndarray]:
        """Predictions as named columns (see ``gnnsys.predict.predict_columns``); with several
        folds (CV) the folds' probabilities are averaged unless ``fold`` picks one."""
        from gnnsys.predict import predict_columns

        self.check_dataset(dataset)
        if pairs is not None and self.task != "link":
            raise ModelFileError(f"model {self.path} was trained for the {self.task} task; link scores for given "
                                 "pairs (--pairs) need a link-prediction model")
        if pairs is None and self.task == "link":
            raise ModelFileError(f"model {self.path} predicts links: pass the node pairs to score with --pairs FILE "
                                 "(two columns of node ids, .csv or .npy)")
        if fold is not None and not 0 <= fold < len(self.folds):
            raise ModelFileError(f"--fold {fold}: model {self.path} holds folds 0..{len(self.folds) - 1}")
        cfg = self._config(device)
        chosen = range(len(self.folds)) if fold is None else [fold]
        from gnnsys.api import _with_split, run_splits

        splits = run_splits(dataset, cfg) if any(self.folds[i]["kind"] == "forward" for i in chosen) else None
        outs = []
        for i in chosen:
            ds = dataset
            if splits is not None and splits[i] is not dataset.split:
                ds = _with_split(dataset, splits[i])
            outs.append(predict_columns(self._build(self.folds[i], ds, cfg), ds, pairs))
        if len(outs) == 1:
            return outs[0]
        merged = dict(outs[0])
        for k in merged:
            if k in ("prob", "score", "value"):
                merged[k] = np.mean([o[k] for o in outs], axis=0)
        if "prob" in merged and "pred" in merged:
            merged["pred"] = merged["prob"].argmax(1)
        return merged
