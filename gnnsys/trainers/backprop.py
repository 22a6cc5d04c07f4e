"""End-to-end backpropagation training for node, link and graph tasks."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gnnsys.batch import MiniBatch
from gnnsys.checkpoint import TrainerCheckpoint, load_source_state, source_state
from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.loading import LoadingPipeline, full_batch, operator_norms
from gnnsys.metrics import accuracy, graph_metric, higher_is_better, link_metric
from gnnsys.models.stack import GNNStack
from gnnsys.samplers.full import FullGraphLoader, GraphBatchLoader, LinkBatchLoader
from gnnsys.trainers.base import History, pair_bce


def node_loss(out: torch.Tensor, batch: MiniBatch, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on ``batch.target``; weighted sum when ``batch.loss_weight`` is set
    (GraphSAINT's loss normalization), plain mean otherwise."""
    y = batch.y if batch.y is not None else labels[batch.node_ids]
    tgt = batch.target if batch.target is not None else torch.arange(out.size(0), device=out.device)
    if batch.loss_weight is not None:
        return (batch.loss_weight * F.cross_entropy(out[tgt], y[tgt], reduction="none")).sum()
    return F.cross_entropy(out[tgt], y[tgt])


def link_loss(h: torch.Tensor, model: GNNStack, batch: MiniBatch) -> torch.Tensor:
    """Binary cross-entropy: positive pairs against sampled negatives."""
    return pair_bce(model.head.score(h, batch.pos_edges), model.head.score(h, batch.neg_edges))


def graph_loss(out: torch.Tensor, y: torch.Tensor, target_type: str) -> torch.Tensor:
    """CE (multiclass), BCE over non-NaN labels (binary multi-task) or MSE (regression)."""
    if target_type == "multiclass":
        return F.cross_entropy(out, y.long().view(-1))
    y = y.float().view(out.shape)
    ok = ~torch.isnan(y)
    if target_type == "binary":
        return F.binary_cross_entropy_with_logits(out[ok], y[ok])
    return F.mse_loss(out[ok], y[ok])


def clip_parts(model: GNNStack, max_norm: float) -> None:
    """Clip the gradient norm of the encoder, the layers and the head separately (OGB's link
    baselines clip the embedding table, the GNN and the predictor each to norm 1)."""
    for part in (model.encoder, model.layers, model.norms, model.head):
        params = [p for p in part.parameters() if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, max_norm)


def feature_counters(store: object) -> dict[str, dict[str, float]] | None:
    """A snapshot of ``store.stats()`` for a store with several tiers (``None`` otherwise)."""
    stats = getattr(store, "stats", None)
    if stats is None:
        return None
    snap = stats()
    return snap if len(snap) > 1 else None


def feature_traffic(store: object, before: dict[str, dict[str, float]] | None) -> dict[str, dict[str, float]] | None:
    """Rows and bytes each tier of ``store`` served since ``before`` (a ``feature_counters``
    snapshot), and the cache tier's hit rate (its share of the rows served): what an epoch
    line and its JSON record show."""
    if before is None:
        return None
    now = feature_counters(store) or {}
    out: dict[str, dict[str, float]] = {}
    for tier, cur in now.items():
        prev = before.get(tier, {})
        if "rows" in cur:
            out[tier] = {k: cur[k] - prev.get(k, 0) for k in ("rows", "bytes", "read_bytes", "needed_bytes")
                         if k in cur}
    if "cache" in out:
        total = sum(v.get("rows", 0) for v in out.values())
        out["cache"]["hit_rate"] = out["cache"].get("rows", 0) / total if total else 0.0
    disk = out.get("disk", {})
    if disk.get("needed_bytes"):  # out-of-core store: read amplification of the epoch
        disk["amplification"] = disk["read_bytes"] / disk["needed_bytes"]
    return out


def traffic_postfix(moved: dict[str, dict[str, float]] | None) -> dict[str, str]:
    """Progress-bar fields for an epoch's feature traffic: cache hit rate and MB per tier."""
    if not moved:
        return {}
    out = {}
    if "hit_rate" in moved.get("cache", {}):
        out["hit"] = f"{moved['cache']['hit_rate']:.2f}"
    for tier, v in moved.items():
        if tier != "cache" and "bytes" in v:
            out[f"{tier}_MB"] = f"{v['bytes'] / 2**20:.0f}"
    if "read_bytes" in moved.get("disk", {}):  # out-of-core: what the disk really delivered
        out["read_MB"] = f"{moved['disk']['read_bytes'] / 2**20:.1f}"
        out["amp"] = f"{moved['disk'].get('amplification', 0.0):.2f}"
    return out


class BackpropTrainer:
    """Trains a ``GNNStack`` end to end with Adam; keeps the best-validation weights.

    ``fit(model, dataset, loader=None, split=None)``: ``loader`` is any iterable of
    ``MiniBatch`` (default: full graph for node tasks, batches of training pairs for link
    tasks, batches of graphs for graph tasks); ``split`` overrides ``dataset.split``
    (random node splits, CV folds). Batches reach the model through the loading pipeline
    (``gnnsys.loading.LoadingPipeline``: operators, features, device copy, prefetching) unless
    ``loader`` is one already. Evaluation is full-batch on the whole graph.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = torch.device(config.device)

    # ---------------------------------------------------------------- evaluate
    @torch.no_grad()
    def evaluate(self, model: GNNStack, dataset: Dataset, split: dict[str, torch.Tensor],
                 keys: Iterable[str] = ("valid", "test")) -> dict[str, float]:
        """Scores of ``model`` on the named parts of ``split`` (and ``valid_loss`` for node and
        graph tasks, which breaks ties between epochs of equal validation score)."""
        model.eval()
        task = dataset.task
        ogb = dataset.meta.get("ogb_name")
        if task == "node":
            out = self._layerwise(model, dataset) if self._eval_layerwise(dataset) else model(self._full(dataset)).cpu()
            res = {k: accuracy(out[split[k]], dataset.labels[split[k]]) for k in keys if k in split}
            if "valid" in split:
                res["valid_loss"] = float(F.cross_entropy(out[split["valid"]], dataset.labels[split["valid"]]))
            return res
        if task == "link":
            h = (self._layerwise(model, dataset, head=False).to(self.device) if self._eval_layerwise(dataset)
                 else model.embed(self._full(dataset)))
            res = {}
            for k in keys:
                if k not in split:
                    continue
                pos = self._scores(model, h, split[k])
                neg = self._scores(model, h, split[f"{k}_neg"])
                res[k] = link_metric(dataset.metric, pos, neg, ogb)
            return res
        res = {}
        for k in keys:
            if k not in split:
                continue
            batches = LoadingPipeline(GraphBatchLoader(dataset, split[k], batch_size=256), dataset, device=self.device,
                                      operators=operator_norms(model), backward=False, prefetch=0)
            preds = [model(b).cpu() for b in batches]
            pred = torch.cat(preds)
            y = dataset.labels[split[k]]
            res[k] = graph_metric(dataset.metric, pred, y, ogb)
            if k == "valid":
                res["valid_loss"] = float(graph_loss(pred, y, dataset.target_type))
        return res

    def _eval_layerwise(self, dataset: Dataset) -> bool:
        """``--eval layerwise``, or no ``--eval`` and the features on disk."""
        from gnnsys.inference import on_disk

        mode = getattr(self.config, "eval_mode", None)
        return mode == "layerwise" or (mode is None and on_disk(dataset.features))

    def _layerwise(self, model: GNNStack, dataset: Dataset, head: bool = True) -> torch.Tensor:
        from gnnsys.inference import layerwise_forward

        return layerwise_forward(model, dataset, head=head, device=self.device,
                                 cache_dir=getattr(self.config, "cache_dir", None))

    def _full(self, dataset: Dataset) -> MiniBatch:
        cached = getattr(self, "_full_cache", None)
        if cached is None or cached[0] is not dataset:
            self._full_cache = (dataset, full_batch(dataset, self.device))
        return self._full_cache[1]

    def _scores(self, model: GNNStack, h: torch.Tensor, pairs: torch.Tensor, chunk: int = 1 << 16):
        pairs = pairs.to(h.device)
        return torch.cat([model.head.score(h, pairs[:, i:i + chunk]) for i in range(0, pairs.size(1), chunk)]
                         ).cpu()

    # --------------------------------------------------------------------- fit
    def default_loader(self, dataset: Dataset, split: dict[str, torch.Tensor]) -> Iterable[MiniBatch]:
        """The training batches' source when none is given (before the loading pipeline)."""
        c = self.config
        if dataset.task == "node":
            loader = FullGraphLoader(dataset, "train")
            loader.batch.target = split["train"]
            return loader
        if dataset.task == "link":
            return LinkBatchLoader(dataset, c.batch_size, c.num_neg, c.seed)
        return GraphBatchLoader(dataset, split["train"], c.batch_size, shuffle=True, seed=c.seed)

    def pipeline(self, model: GNNStack, dataset: Dataset, source: Iterable[MiniBatch]) -> LoadingPipeline:
        """``source`` through the loading pipeline: the model's operators, the dataset's features,
        this trainer's device (``config.prefetch`` batches ahead)."""
        if isinstance(source, LoadingPipeline):
            return source
        return LoadingPipeline(source, dataset, device=self.device, operators=operator_norms(model),
                               prefetch=self.config.prefetch)

    def train_step(self, model: GNNStack, batch: MiniBatch, dataset: Dataset) -> torch.Tensor:
        """Loss of one mini-batch (not yet backpropagated)."""
        if dataset.task == "node":
            return node_loss(model(batch), batch, dataset.labels.to(self.device))
        if dataset.task == "link":
            return link_loss(model.embed(batch), model, batch)
        return graph_loss(model(batch), batch.y, dataset.target_type)

    def fit(self, model: GNNStack, dataset: Dataset, loader: Iterable[MiniBatch] | None = None,
            split: dict[str, torch.Tensor] | None = None, checkpoint: TrainerCheckpoint | None = None) -> History:
        """Train ``model`` on ``dataset``; returns the ``History`` (model ends at its best weights).

        ``checkpoint`` (``gnnsys.checkpoint``): continue from its state, if it has one, and
        hand it this trainer's state at the end of every epoch."""
        c = self.config
        split = split or dataset.split
        model.to(self.device)
        loader = self.pipeline(model, dataset, loader if loader is not None else self.default_loader(dataset, split))
        store = dataset.features
        opt = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, c.lr_decay_step, c.lr_decay) if c.lr_decay_step else None
        hist = History(metric=dataset.metric)
        sign = 1.0 if higher_is_better(dataset.metric) else -1.0
        best_score, best_state, since = (-math.inf, -math.inf), None, 0
        start, finished = 1, False
        if checkpoint is not None and checkpoint.state is not None:
            st = checkpoint.state
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            if sched is not None:
                sched.load_state_dict(st["scheduler"])
            best_score, best_state, since = tuple(st["best_score"]), st["best_state"], int(st["since"])
            hist = History.from_state(st["history"])
            load_source_state(loader, st["loader"])
            start, finished = int(st["epoch"]) + 1, bool(st["finished"])
            checkpoint.restore_rng()

        def state(epoch: int, done: bool) -> dict:
            return {"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": None if sched is None else sched.state_dict(), "best_score": list(best_score),
                    "best_state": best_state, "since": since, "history": hist.state(), "epoch": epoch,
                    "finished": done, "loader": source_state(loader)}

        t0 = time.perf_counter()
        bar = tqdm(range(start, 1 if finished else c.epochs + 1), desc=f"{dataset.name}", disable=c.quiet, leave=False,
                   mininterval=1.0, dynamic_ncols=True)
        for epoch in bar:
            model.train()
            total, nb = 0.0, 0
            before = feature_counters(store)
            for batch in loader:
                opt.zero_grad()
                loss = self.train_step(model, batch, dataset)
                loss.backward()
                if c.grad_clip:
                    clip_parts(model, c.grad_clip)
                opt.step()
                total, nb = total + float(loss.detach()), nb + 1
            if sched is not None:
                sched.step()
            rec = {"epoch": epoch, "loss": total / max(nb, 1)}
            moved = feature_traffic(store, before)
            if moved is not None:
                rec["features"] = moved
            if epoch % c.eval_every == 0 or epoch == c.epochs:
                rec.update(self.evaluate(model, dataset, split))
                val = rec.get("valid", float("nan"))
                # higher is better: the validation score, then (on ties) a lower validation loss
                score = (sign * val if not math.isnan(val) else -math.inf, -rec.get("valid_loss", 0.0))
                if c.select_by == "loss" and "valid_loss" in rec:
                    score = score[::-1]
                if score > best_score or best_state is None:
                    best_score, since = score, 0
                    best_state = copy.deepcopy(model.state_dict())
                    hist.best_epoch, hist.best_val = epoch, val
                    hist.test_at_best = rec.get("test", float("nan"))
                else:
                    since += c.eval_every
                bar.set_postfix(loss=f"{rec['loss']:.4f}", val=f"{val:.4f}", test=f"{rec.get('test', 0):.4f}",
                                **traffic_postfix(moved), refresh=False)
            hist.epochs.append(rec)
            stop = c.patience is not None and since >= c.patience
            if checkpoint is not None:
                done = stop or epoch == c.epochs
                checkpoint.epoch_done(lambda e=epoch, d=done: state(e, d), finished=done)
            if stop:
                break
        hist.seconds = time.perf_counter() - t0
        if best_state is not None:
            model.load_state_dict(best_state)
        return hist
