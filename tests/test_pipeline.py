"""GNNPipe and the graph-parallel baseline on real gloo process groups (2-4 local ranks, one
torch thread each): exactness against single-process training, convergence with staleness,
byte counters against the analytic count, and a killed rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from gnnsys.api import train
from gnnsys.datasets import load_dataset
from gnnsys.pipeline.analytic import graph_parallel_train_bytes, pipe_train_bytes
from gnnsys.pipeline.launch import PipelineError
from gnnsys.pipeline.partition import halo_sizes, metis_assignment

SMALL = dict(dataset="cora", layer="gcn", layers=4, hidden=16, epochs=4, dropout=0.0, init="kaiming", residual=True,
             quiet=True, patience=None, threads_per_rank=1)


@pytest.fixture(scope="module")
def cora(data_root):
    return load_dataset("cora", root=data_root)


@pytest.fixture(scope="module")
def single(cora):
    torch.set_num_threads(1)
    return train(data=cora, **SMALL)


def losses(res):
    return [h["loss"] for h in res["runs"][0]["history"]]


def test_torchrun_two_ranks_exact_equals_single_process(cora, single, data_root, tmp_path):
    """``torchrun -m gnnsys train --trainer pipe`` with staleness disabled reproduces
    single-process training (same seed, 3 chunks) to 1e-5, and its byte counter matches."""
    out = tmp_path / "pipe.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "gnnsys",
           "train", "--dataset", "cora", "--data-root", str(data_root), "--trainer", "pipe", "--stages", "2",
           "--chunks", "3", "--no-staleness", "--layer", "gcn", "--layers", "4", "--hidden", "16", "--epochs", "4",
           "--dropout", "0", "--init", "kaiming", "--residual", "--threads-per-rank", "1", "--quiet",
           "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert losses(res) == pytest.approx(losses(single), abs=1e-5)
    assert res["test"] == pytest.approx(single["test"], abs=1e-6)
    p = res["runs"][0]["pipe"]
    assert p["stale_epochs"] == 0 and p["chunks"] == 3 and p["stages"] == 2
    pred = pipe_train_bytes(cora.num_nodes, p["widths"], p["stage_layers"])
    assert pred == 2 * cora.num_nodes * 16 * 4
    assert p["train_bytes"] == [pred] * 4
    assert proc.stdout.count("cora (node, pipe") == 1  # one summary line (rank 0)


def test_one_process_runs_equal_single_process(cora, single):
    """A 1-rank run of either scheme is ordinary training (the pipe with 3 exact chunks)."""
    pipe1 = train(data=cora, trainer="pipe", stages=1, chunks=3, pipe_stale=False, **SMALL)
    gp1 = train(data=cora, trainer="pipe", parallel="graph", stages=1, **SMALL)
    assert losses(pipe1) == pytest.approx(losses(single), abs=1e-5)
    assert losses(gp1) == pytest.approx(losses(single), abs=1e-5)
    assert pipe1["runs"][0]["pipe"]["train_bytes"] == [0] * 4


def test_graph_parallel_two_ranks_equals_single_and_counts_bytes(cora):
    """Graph-parallel SAGE with gradient clipping on 2 ranks equals single-process training;
    its bytes are the halo rows of layers 1..L-1 both ways plus the weight all-reduce, with
    halos recomputed here from METIS."""
    kw = dict(SMALL, layer="sage", grad_clip=0.5)
    ref = train(data=cora, **kw)
    gp = train(data=cora, trainer="pipe", parallel="graph", stages=2, **kw)
    assert losses(gp) == pytest.approx(losses(ref), abs=1e-5)
    p = gp["runs"][0]["pipe"]
    halo = halo_sizes(cora.graph, metis_assignment(cora.graph, 2), 2)
    assert p["halo"] == halo
    pred = graph_parallel_train_bytes(halo, p["widths"], p["num_params"], 2)
    assert pred["halo"] == 2 * 3 * 16 * sum(halo) * 4
    assert p["train_bytes"] == [pred["total"]] * 4


def test_stale_pipeline_converges_on_cora(cora):
    """4 stages, 8 chunks, historical embeddings every epoch: still learns Cora; the bubble is
    measured every epoch and the ideal GPipe bubble reported."""
    kw = dict(SMALL, epochs=30, dropout=0.5, hidden=32, eval_every=10)
    res = train(data=cora, trainer="pipe", stages=4, chunks=8, **kw)
    p = res["runs"][0]["pipe"]
    assert p["stale_epochs"] == 30
    assert res["test"] > 0.70, res["test"]
    assert p["bubble_ideal"] == pytest.approx(3 / 11)
    assert len(p["bubble"]) == 30 and all(0.0 <= b < 1.0 for b in p["bubble"])
    widths = p["widths"]
    assert p["train_bytes"][-1] == pipe_train_bytes(cora.num_nodes, widths, p["stage_layers"])
    assert p["stage_layers"] == [[0, 1], [1, 2], [2, 3], [3, 4]]


def test_killed_rank_is_named_and_nobody_hangs(cora):
    """SIGKILL the last of 3 ranks mid-epoch: the others fail fast, and rank 0 (which only
    talks to rank 1) names rank 2 through the reports in the rendezvous store."""
    t0 = time.monotonic()
    with pytest.raises(PipelineError) as err:
        train(data=cora, trainer="pipe", stages=3, chunks=3, dist_timeout=30,
              extra={"pipe_fault": {"rank": 2, "epoch": 2}}, **SMALL)
    elapsed = time.monotonic() - t0
    msg = str(err.value)
    assert "rank 2 was killed by signal 9" in msg
    rank0 = next(line for line in msg.splitlines() if line.strip().startswith("rank 0:"))
    assert "rank 2 died or stopped answering" in rank0, msg
    rank1 = next(line for line in msg.splitlines() if line.strip().startswith("rank 1:"))
    assert "rank 2 died or stopped answering" in rank1, msg
    assert elapsed < 30 + 10 + 30, elapsed  # well inside the documented dist_timeout + grace


@pytest.mark.parametrize("layer", ["gat", "sage"])
def test_any_registry_layer_through_chunks(layer):
    """Layers that take ``edge_index`` (GAT) or the sliced operator (SAGE), and a learned
    embedding table (no features): 3 exact chunks on one rank equal full-graph training."""
    from dataclasses import replace

    ds = load_dataset("synthetic-sbm", num_nodes=600)
    if layer == "sage":
        ds = replace(ds, features=None)
    kw = dict(layer=layer, layers=3, hidden=8, epochs=3, dropout=0.0, quiet=True, patience=None)
    ref = train(data=ds, **kw)
    pipe = train(data=ds, trainer="pipe", stages=1, chunks=3, pipe_stale=False, **kw)
    assert losses(pipe) == pytest.approx(losses(ref), abs=1e-5)


def test_sf_pipeline_sends_forward_only(cora):
    """ForwardGNN SF per stage: no gradient crosses a stage, so an epoch moves each chunk's
    rows (and the class virtual nodes') forward once, half of backprop GNNPipe's volume."""
    res = train(data=cora, trainer="pipe", stages=2, chunks=2, pipe_train="sf", layer="gcn", layers=2, hidden=32,
                epochs=20, dropout=0.0, eval_every=10, quiet=True, patience=None, threads_per_rank=1)
    p = res["runs"][0]["pipe"]
    rows = cora.num_nodes + cora.num_classes
    assert p["train"] == "sf" and p["train_bytes"] == [rows * 32 * 4] * 20
    assert p["bytes_rank0"]["train"]["received"] == 0  # rank 0 never receives a gradient
    assert res["test"] > 0.65, res["test"]
