"""``gnnsys bench SUITE`` (issue 17, item 5): suites defined once, run over seeds, reported as
mean ± std beside the anchor, JSON and curves. Only tiny ``--quick`` settings run here."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from gnnsys.experiments import bench, bench_cache, foundation, gnnpipe, saint_train, suites, virgo

from gnnsys.api import train
from gnnsys.cli import build_parser, main
from gnnsys.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]


def test_every_suite_is_a_bench_subcommand():
    parser = build_parser()
    for name in [*suites.TRAIN_SUITES, *bench.MODULE_BENCHES]:
        args = parser.parse_args(["bench", name, *(["--suite", "sf"] if name == "gnnpipe" else [])])
        assert callable(args.func)
    assert parser.parse_args(["bench", "cache", "--quick"]).func is bench_cache.main  # the existing bench keeps working
    assert parser.parse_args(["bench", "gnnpipe", "--suite", "volume"]).func is gnnpipe.run
    expected = {"node": 6, "saint": 10, "virgo": 36, "forwardgnn": 12, "link": 2}
    for name, n in expected.items():
        assert len(suites.TRAIN_SUITES[name].cases) == n
    keys = [c.key for s in suites.TRAIN_SUITES.values() for c in s.cases]
    assert all(len(set(c.key for c in s.cases)) == len(s.cases) for s in suites.TRAIN_SUITES.values()), keys


def test_experiments_read_their_cases_from_the_suites():
    assert virgo.SUITES[0].overrides == {k: v for k, v in suites.find_case("virgo", "cora-gcn3/virgo").config.items()
                                         if k not in ("dataset", "init")}
    assert [s.name for s in virgo.SUITES] == [r[0] for r in suites.VIRGO_ROWS]
    assert foundation.SUITES["cora"][0] == suites.find_case("node", "Cora/gcn").config
    assert foundation.SUITES["ddi"][1] == suites.find_case("link", "ogbl-ddi/sage").anchor.value
    assert saint_train.planetoid_case("cora", "saint-rw") == suites.find_case("saint", "Cora/saint-rw").config
    assert saint_train.SAMPLERS == suites.SAINT_SAMPLERS


def test_markdown_table_of_mean_and_std_beside_the_anchor():
    suite = suites.TRAIN_SUITES["saint"]
    res = [dict(key="Cora/full", row="Cora", column="full", metric="acc", scores=[0.8, 0.82], mean=0.81, std=0.01,
                n=2, anchor=0.815, anchor_std=None, anchor_source="paper", seconds=3.0),
           dict(key="Cora/saint-rw", row="Cora", column="saint-rw", metric="acc", scores=[0.83], mean=0.83, std=0.0,
                n=1, anchor=None, anchor_std=None, anchor_source=None, seconds=4.0)]
    md = bench.markdown(suite, res)
    assert "| Cora/full | acc | 81.0 ± 1.0 | 2 | 81.5 | paper | 3 |" in md
    assert "| Cora/saint-rw | acc | 83.0 ± 0.0 | 1 | — | — | 4 |" in md
    assert "| Cora | 81.0 ± 1.0 | 83.0 ± 0.0 (+2.0) |" in md  # difference to the reference column


def test_quick_saint_suite_matches_direct_training(tmp_path, capsys, data_root):
    """Two cases, two seeds: the full-batch case's mean and std are those of ``train`` called directly."""
    out, png = tmp_path / "saint.json", tmp_path / "curves.png"
    rc = main(["bench", "saint", "--quick", "--seeds", "2", "--epochs", "3", "--cases", "Cora/full,Cora/saint-rw",
               "--data-root", str(data_root), "--out", str(out), "--plot", str(png)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| Cora/saint-rw | acc |" in printed and "| Cora |" in printed
    rec = json.loads(out.read_text())
    assert [c["key"] for c in rec["cases"]] == ["Cora/full", "Cora/saint-rw"] and rec["quick"]
    full, rw = rec["cases"]
    assert rw["n"] == 2 and len(rw["runs"][0]["curves"][0]) == 3  # one validation score per epoch
    case = suites.find_case("saint", "Cora/full")
    cfg = {**case.config, **case.quick, "epochs": 3}
    direct = [train(TrainConfig(seed=s, quiet=True, data_root=str(data_root), **cfg))["test"] for s in (0, 1)]
    assert full["scores"] == direct
    assert full["mean"] == pytest.approx(statistics.fmean(direct))
    assert full["std"] == pytest.approx(statistics.pstdev(direct))
    assert png.stat().st_size > 1000


def test_set_overrides_and_anchor_rows(tmp_path, capsys, data_root):
    out = tmp_path / "node.json"
    rc = main(["bench", "node", "--quick", "--seeds", "1", "--epochs", "2", "--cases", "CiteSeer/gcn",
               "--set", "hidden=8", "--data-root", str(data_root), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| CiteSeer/gcn | acc |" in printed and "| 70.3 | Kipf & Welling 2017 |" in printed
    rec = json.loads(out.read_text())["cases"][0]
    assert rec["config"]["hidden"] == 8 and rec["anchor"] == 0.703 and rec["anchor_source"] == suites.GCN_PAPER


def test_gnnpipe_joins_as_a_suite(capsys):
    rc = main(["bench", "gnnpipe", "--report", str(REPO / "results" / "gnnpipe_sf.json")])
    assert rc == 0 and "|" in capsys.readouterr().out


@pytest.mark.parametrize("argv, expect", [
    (["bench", "node", "--seeds", "0"], "--seeds must be >= 1"),
    (["bench", "node", "--cases", "Nowhere/*"], "matches none of"),
    (["bench", "node", "--set", "no_such_field=1"], "not a TrainConfig field"),
    (["bench", "node", "--set", "hidden"], "--set expects NAME=VALUE"),
    (["bench", "node", "--device", "tpu"], "--device must be"),
    (["bench", "node", "--out", "/proc/no/such/dir/x.json"], "--out"),
    (["bench", "nosuch"], "invalid choice: 'nosuch'"),
    (["bench", "gnnpipe", "--suite", "sf", "--layers", "x"], "--layers takes comma-separated integers"),
    (["bench", "gnnpipe"], "--suite is required"),
])
def test_bench_bad_options(argv, expect, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("gnnsys: error:") and expect in err[0], err


def test_module_bench_returning_its_results_exits_zero(monkeypatch):
    """``bench_disk.main`` hands Python callers its results dict; as ``gnnsys bench disk`` the
    command's exit status is 0 (it raised ``TypeError`` in ``int(dict)`` before)."""
    from gnnsys.experiments import bench_disk

    seen = {}

    def fake_main(args):
        seen["quick"] = args.quick
        return {"runs": {}}

    monkeypatch.setattr(bench_disk, "main", fake_main)
    assert main(["bench", "disk", "--quick"]) == 0 and seen == {"quick": True}
    monkeypatch.setattr(bench_disk, "main", lambda args: 3)  # an int is the exit status
    assert main(["bench", "disk", "--quick"]) == 3
