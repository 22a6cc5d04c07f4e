"""``gnnsys diagnose-variance``: the CLI, the plot, and the Cora 8-layer GCN comparison."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from gnnsys.cli import main as cli_main
from gnnsys.diagnostics import diagnose, max_log_ratio


def test_max_log_ratio() -> None:
    assert max_log_ratio([1.0, 1.0, 1.0]) == 0.0
    assert max_log_ratio([1.0, math.e, 1.0]) == pytest.approx(1.0)
    assert max_log_ratio([1.0, 0.0]) == math.inf


def test_cli_prints_table_and_writes_plot_and_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    png, js = tmp_path / "v.png", tmp_path / "v.json"
    rc = cli_main(["diagnose-variance", "--dataset", "synthetic-sbm", "--layers", "3", "--hidden", "16",
                   "--init", "xavier,virgo", "--plot", str(png), "--out", str(js)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "xavier fwd" in out and "virgo bwd" in out and "max_l |log" in out
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    res = json.loads(js.read_text())
    for d in res["schemes"].values():
        assert len(d["forward"]) == len(d["backward"]) == 4  # H^0 .. H^3
        assert all(v > 0 and math.isfinite(v) for v in d["forward"] + d["backward"])


def test_unknown_scheme_is_an_error(capsys: pytest.CaptureFixture) -> None:
    rc = cli_main(["diagnose-variance", "--dataset", "synthetic-sbm", "--layers", "2", "--init", "lecun"])
    assert rc == 2
    assert "unknown init scheme" in capsys.readouterr().err


def _data_root() -> Path:
    return Path(os.environ.get("GNNSYS_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="module")
def cora_result() -> dict:
    root = _data_root()
    if not (root / "planetoid").is_dir():
        pytest.skip(f"Cora not found under {root} (set GNNSYS_DATA)")
    from gnnsys.datasets import load_dataset

    cora = load_dataset("cora", root=root)
    return diagnose(cora, ["xavier", "kaiming", "virgo"], "gcn", layers=8, hidden=64, seed=0, repeats=2)


def test_cora_gcn8_virgo_backward_beats_xavier_and_kaiming(cora_result: dict) -> None:
    s = cora_result["schemes"]
    assert s["virgo"]["backward_summary"] < s["xavier"]["backward_summary"]
    assert s["virgo"]["backward_summary"] < s["kaiming"]["backward_summary"]
    assert s["virgo"]["forward_summary"] < s["xavier"]["forward_summary"]


@pytest.mark.xfail(strict=False, reason=(
    "measured: on Cora (row-normalized features, so x̄ is constant and s_{l-1}(x̄)/s_l(x̄) ≈ 1) "
    "Virgo's forward variances of the hidden layers equal Kaiming's, and the harmonic mean with "
    "the backward term 1/(C-1) raises the last layer's σ² to 1.7x Kaiming's: the logits' variance "
    "jumps by log 1.6 ≈ 0.48 while Kaiming's largest forward step is the input layer (≈ 0.40)"))
def test_cora_gcn8_virgo_forward_beats_kaiming(cora_result: dict) -> None:
    s = cora_result["schemes"]
    assert s["virgo"]["forward_summary"] < s["kaiming"]["forward_summary"]


def test_profile_runs_without_dropout() -> None:
    # The profile must see the model at initialization with every dropout off (input
    # dropout included): two passes over the same model give the same variances.
    import torch

    from gnnsys.api import model_for, seed_everything
    from gnnsys.config import TrainConfig
    from gnnsys.datasets import load_dataset
    from gnnsys.diagnostics import variance_profile

    ds = load_dataset("synthetic-sbm")
    cfg = TrainConfig(dataset=ds.name, layers=3, dropout=0.5, quiet=True).resolved(ds.name, ds.task)
    seed_everything(0)
    model = model_for(ds, cfg)
    assert model.input_dropout == 0.5
    torch.manual_seed(1)
    a = variance_profile(model, ds, cfg)
    torch.manual_seed(2)
    b = variance_profile(model, ds, cfg)
    assert a == b
