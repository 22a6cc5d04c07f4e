"""Checkpoints of a training run, resumable bit for bit (``--checkpoint-dir``, ``--resume``).

A run (one ``gnnsys.api.train`` call: one training, or the folds of a cross-validation)
writes ``DIR/ckpt-SSSSSSSS.pt`` every ``every`` epochs and at the end, ``S`` the epochs the
whole run has completed (over CV folds and ForwardGNN layers). Each file is written to a
temporary name, fsynced and renamed (``gnnsys.paths.atomic_write_bytes``); the newest
``keep`` (2) files are kept, so the previous checkpoint survives until the new one is whole.

A checkpoint is a ``torch.save`` dict of tensors and plain values, read back with
``torch.load(weights_only=True)``:

- ``format`` / ``version``: ``"gnnsys-checkpoint"`` / 1;
- ``step``: epochs completed in the run; ``fold``: the CV fold in progress (0 without CV);
- ``fingerprint``: the configuration (every ``TrainConfig`` field that changes what is
  computed, ``RUN_FIELDS`` excepted) and the dataset signature, as JSON; resuming with
  anything else is a ``CheckpointError`` that lists the differences;
- ``completed``: the finished CV folds (their result record and best weights);
- ``trainer``: the trainer's own state at the end of an epoch. Backprop: model, optimizer
  and LR-scheduler state, early-stopping state (best score, epochs since, best weights),
  the per-epoch history, the epoch, and the batch source's state (the GraphSAINT sampler's
  stream position and its normalization statistics; the shuffling generators of the graph
  and link batchers). ForwardGNN: every layer built so far, the current layer's optimizer
  and early-stopping state, the history and per-layer records (the top-down variants: all
  layers, their optimizers and the global node states);
- ``rng``: Python's, NumPy's and torch's global generators (and CUDA's when in use).

Resuming (``resume="latest"``, or ``"auto"`` which starts fresh, saying so, when the folder
holds no checkpoint) loads the newest file that reads back whole; a truncated or foreign
newest file is skipped with a warning naming it. A folder that already holds checkpoints is
never silently overwritten by a fresh run.

GNNPipe (``--trainer pipe``) writes one part per rank and a manifest in this format
(``gnnsys.pipeline.ckpt``). Not checkpointed: the contents of the tiered feature store's
cache (they decide which tier serves a row, never its value, so results are unchanged; the
cache re-warms and the per-epoch traffic counters after a resume differ from an
uninterrupted run's).
"""

from __future__ import annotations

import json
import random
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnnsys.errors import CheckpointError
from gnnsys.paths import atomic_write_bytes, torch_bytes

FORMAT = "gnnsys-checkpoint"
VERSION = 1
KEEP = 2
#: ``TrainConfig`` fields that say where and how a run is kept, not what it computes: they may
#: differ between a run and its resumption.
RUN_FIELDS = frozenset({"out", "quiet", "checkpoint_dir", "checkpoint_every", "resume", "save_model", "prefetch",
                        "num_workers", "data_root", "device", "cache_device", "dist_timeout", "threads_per_rank",
                        "saint_norm_cache"})
_NAME = re.compile(r"^ckpt-(\d{8,})\.pt$")


class CheckpointWarning(UserWarning):
    """A checkpoint file was skipped (truncated or not a gnnsys checkpoint)."""


# ------------------------------------------------------------------------------ RNG states
def rng_state() -> dict[str, Any]:
    """The global random generators' states (Python, NumPy, torch, and CUDA once initialized)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def plain(value: Any) -> Any:
    """``value`` (a result record) with NumPy scalars turned into Python numbers, so that it
    reads back under ``torch.load(weights_only=True)``; tensors are kept."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------------- batch sources
def source_state(source: Any) -> dict[str, Any] | None:
    """``source.state_dict()`` for a batch source that has state (samplers, shuffling
    batchers, the loading pipeline around them); ``None`` for a plain sequence of batches.
    ``CheckpointError`` for any other iterable: its position could not be restored."""
    if source is None or isinstance(source, list | tuple):
        return None
    fn = getattr(source, "state_dict", None)
    if fn is None:
        raise CheckpointError(f"the batch source {type(source).__name__} has no state_dict(), so a checkpoint cannot "
                              "record where it is; give it state_dict()/load_state_dict() or train without "
                              "--checkpoint-dir")
    return fn()


def load_source_state(source: Any, state: dict[str, Any] | None) -> None:
    """Put ``source`` back where ``source_state`` found it."""
    if state is not None:
        source.load_state_dict(state)


def find_saint_statistics(state: Any) -> dict[str, Any] | None:
    """The GraphSAINT statistics stored somewhere in a trainer state (``None`` if none)."""
    if isinstance(state, dict):
        if "saint_stats" in state and state["saint_stats"] is not None:
            return state["saint_stats"]
        for v in state.values():
            found = find_saint_statistics(v)
            if found is not None:
                return found
    return None


# ---------------------------------------------------------------------------- fingerprint
def run_fingerprint(config: dict[str, Any], dataset_signature: dict[str, Any]) -> str:
    """What a checkpoint must share with the run resuming it, as canonical JSON."""
    conf = {k: v for k, v in config.items() if k not in RUN_FIELDS}
    return json.dumps({"config": conf, "dataset": dataset_signature}, sort_keys=True, default=str)


def _differences(saved: str, now: str) -> list[str]:
    a, b = json.loads(saved), json.loads(now)
    out = []
    for part in ("dataset", "config"):
        x, y = a.get(part, {}), b.get(part, {})
        for k in sorted(set(x) | set(y)):
            if x.get(k) != y.get(k):
                flag = k if part == "dataset" else "--" + k.replace("_", "-")
                out.append(f"{part} {flag}: checkpoint {x.get(k)!r}, now {y.get(k)!r}")
    return out


# ------------------------------------------------------------------------------ the files
def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file's contents; ``CheckpointError`` saying why when it is truncated,
    unreadable or not a gnnsys checkpoint."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a torn or foreign file shows up as any of several errors
        raise CheckpointError(f"{path} cannot be read back ({type(e).__name__}: {str(e)[:160]}); it is truncated "
                              "or not a gnnsys checkpoint") from e
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gnnsys checkpoint")
    if d.get("version") != VERSION:
        raise CheckpointError(f"{path} is a gnnsys checkpoint of format version {d.get('version')}, this gnnsys "
                              f"reads version {VERSION}")
    return d


class TrainerCheckpoint:
    """What one trainer sees of the run's checkpoints: the state to resume from (``state``,
    ``None`` for a fresh start) and ``epoch_done`` to call at the end of every epoch."""

    def __init__(self, run: Checkpointer, fold: int, state: dict[str, Any] | None, rng: dict[str, Any] | None) -> None:
        self.run, self.fold, self.state, self._rng = run, fold, state, rng

    def restore_rng(self) -> None:
        """Set the global generators to what they were when ``state`` was saved. A trainer
        calls this where it saved them: after building everything, before the next epoch."""
        if self._rng is not None:
            set_rng_state(self._rng)
            self._rng = None

    def epoch_done(self, collect: Callable[[], dict[str, Any]], finished: bool = False) -> None:
        """Count one epoch; write a checkpoint every ``every`` epochs, and when ``finished``
        (``collect()`` gives the trainer's state, captured now)."""
        self.run.step += 1
        if finished or self.run.step % self.run.every == 0:
            self.run.save(self.fold, collect(), finished)


class Checkpointer:
    """The checkpoints of one run in ``directory`` (see the module docstring).

    ``start(resume)`` reads the folder; ``trainer(fold)`` gives a trainer its view;
    ``fold_done(record, model_state)`` records a finished CV fold."""

    def __init__(self, directory: str | Path, every: int, fingerprint: str, config: dict[str, Any],
                 keep: int = KEEP) -> None:
        self.dir = Path(directory).expanduser()
        self.every, self.fingerprint, self.config, self.keep = max(1, every), fingerprint, config, keep
        self.step, self.fold = 0, 0
        self.completed: list[dict[str, Any]] = []
        self.loaded: dict[str, Any] | None = None
        self.loaded_from: Path | None = None

    def files(self) -> list[Path]:
        """Checkpoint files in the folder, oldest first."""
        if not self.dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def start(self, resume: str | None) -> Checkpointer:
        """Read the folder: with ``resume`` load the newest usable checkpoint; without it,
        refuse a folder that already holds checkpoints."""
        for tmp in self.dir.glob(".ckpt-*.tmp"):  # a write the last run did not finish
            tmp.unlink(missing_ok=True)
        files = self.files()
        if resume is None:
            if files:
                raise CheckpointError(f"--checkpoint-dir {self.dir} already holds checkpoints of a run (newest "
                                      f"{files[-1].name}); pass --resume to continue it, or choose an empty folder")
            return self
        if not files:
            if resume == "auto":
                self._say(f"no checkpoint in {self.dir}; starting fresh (--resume auto)")
                return self
            raise CheckpointError(f"--resume: no checkpoint in {self.dir} to resume from; drop --resume to start "
                                  "fresh, or use --resume auto to continue only when there is one")
        d = self._newest_usable(files)
        self.loaded = d
        self.step, self.fold = int(d["step"]), int(d["fold"])
        self.completed = list(d["completed"])
        self._say(f"resuming from {self.loaded_from} (epoch {self.step} of the run"
                  + (f", fold {self.fold + 1}" if self.completed or self.fold else "") + ")")
        return self

    def _newest_usable(self, files: list[Path]) -> dict[str, Any]:
        problems = []
        for i in range(len(files) - 1, -1, -1):
            path = files[i]
            try:
                d = read_checkpoint(path)
            except CheckpointError as e:
                problems.append(str(e))
                nxt = f"falling back to {files[i - 1].name}" if i > 0 else "no older checkpoint to fall back to"
                warnings.warn(f"skipping checkpoint {path}: {e}; {nxt}", CheckpointWarning, stacklevel=3)
                continue
            if d["fingerprint"] != self.fingerprint:
                diff = _differences(d["fingerprint"], self.fingerprint)
                raise CheckpointError(f"checkpoint {path} was written by another configuration ("
                                      + "; ".join(diff[:8]) + (" ..." if len(diff) > 8 else "")
                                      + "); resume with the same options, or choose another --checkpoint-dir")
            self.loaded_from = path
            return d
        raise CheckpointError(f"no usable checkpoint in {self.dir}: " + " | ".join(problems)
                              + "; remove them to start fresh")

    def _say(self, msg: str) -> None:
        print(f"gnnsys: {msg}", file=sys.stderr, flush=True)

    # ---------------------------------------------------------------- trainers
    def trainer(self, fold: int = 0) -> TrainerCheckpoint:
        """The view of fold ``fold``'s trainer (the loaded state when it is that fold's)."""
        d = self.loaded
        if d is not None and int(d["fold"]) == fold and d.get("trainer") is not None:
            self.loaded = None  # used once: later folds start fresh
            return TrainerCheckpoint(self, fold, d["trainer"], d["rng"])
        self.fold = fold
        return TrainerCheckpoint(self, fold, None, None)

    def completed_fold(self, fold: int) -> dict[str, Any] | None:
        """The record of fold ``fold`` if the run had finished it before the checkpoint."""
        return self.completed[fold] if fold < len(self.completed) else None

    def fold_done(self, fold: int, record: dict[str, Any], model_state: Any = None) -> None:
        """Record a finished fold (its result record and, for a saved model, its weights)."""
        if fold == len(self.completed):
            self.completed.append({"record": plain(record), "model": model_state})
        self.fold = fold + 1

    def save(self, fold: int, trainer_state: dict[str, Any], finished: bool) -> Path:
        """Write the checkpoint of this moment (atomically) and drop all but the newest ``keep``."""
        payload = {"format": FORMAT, "version": VERSION, "step": self.step, "fold": fold,
                   "fingerprint": self.fingerprint, "config": json.dumps(self.config, default=str),
                   "completed": self.completed, "trainer": trainer_state, "finished": finished, "rng": rng_state()}
        path = atomic_write_bytes(self.dir / f"ckpt-{self.step:08d}.pt", torch_bytes(payload), "--checkpoint-dir")
        for old in self.files()[:-self.keep]:
            old.unlink(missing_ok=True)
        return path


def for_run(config: Any, dataset_signature: dict[str, Any]) -> Checkpointer | None:
    """The ``Checkpointer`` a resolved ``TrainConfig`` asks for (``None`` without
    ``checkpoint_dir``), with the folder read (``start(config.resume)``)."""
    if not config.checkpoint_dir:
        return None
    conf = config.to_dict()
    ck = Checkpointer(config.checkpoint_dir, config.checkpoint_every, run_fingerprint(conf, dataset_signature), conf)
    return ck.start(config.resume)
