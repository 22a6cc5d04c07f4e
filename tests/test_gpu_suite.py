"""The GPU suite (``gnnsys.experiments.gpu_suite``): options, the planned items and commands for a
GPU and for the CPU dry run, the runner's timeouts, the summary from fake results, and one cheap
item end to end on the CPU."""

from __future__ import annotations

import json
import sys
import time

import pytest
from gnnsys.experiments import gpu_suite as gs

ONE_GPU = gs.Probe(cuda_devices=1, cpus=16, has_ogb=True, loading_has_device=False, ddi_path="/data/ogb/ogbl_ddi")
NO_GPU = gs.Probe(cuda_devices=0, cpus=2, has_ogb=True, loading_has_device=False, ddi_path="/data/ogb/ogbl_ddi")


def args(*argv: str):
    return gs.parse_args(["--data-root", "/data", "--work-dir", "/w", *argv])


def by_name(items):
    return {i.name: i for i in items}


def test_options():
    a = args()
    assert a.device == "cuda" and not a.quick and a.total_budget == gs.TOTAL_BUDGET_CUDA
    assert args("--device", "cpu").total_budget == gs.TOTAL_BUDGET_CPU
    assert args("--budget", "ddi=300", "--budget", "cache=10").budget == {"ddi": 300.0, "cache": 10.0}
    assert gs.selected("tiering,ddi") == ["train_step", "cache", "loading", "ddi"]
    assert gs.selected(None) == list(gs.ITEMS)
    with pytest.raises(SystemExit):
        args("--only", "samplers,nonsense")
    with pytest.raises(SystemExit):
        args("--budget", "nonsense=3")


def test_cuda_plan_one_gpu():
    items = gs.plan(args(), ONE_GPU)
    assert [i.name for i in items] == list(gs.ITEMS)
    it = by_name(items)
    assert sum(gs.CUDA_BUDGETS[n] for n in gs.EXCLUSIVE if n != "loading") + gs.CUDA_BUDGETS["ddi"] <= 480
    assert [s.argv[-3:] for s in it["profile"].steps] == [["node", "--groups", "5"], ["edge", "--groups", "5"]]
    sam = it["samplers"].steps[0].argv
    assert "--quick" not in sam and sam[sam.index("--device") + 1] == "cuda" and "--no-dgl" in sam
    assert it["samplers"].steps[0].json_out == "/w/bench_samplers.json"
    assert "--quick" not in it["cache"].steps[0].argv and "500000" in it["cache"].steps[0].argv
    assert "--device" in it["loading"].skip and not it["loading"].steps
    ddi = it["ddi"]
    assert ddi.concurrent and ddi.stretch and not ddi.exclusive and ddi.skip is None and ddi.fail is None
    assert len(ddi.steps) == 6 and all(s.env["OMP_NUM_THREADS"] == "2" for s in ddi.steps)
    full = [s.argv for s in ddi.steps if "--sampler" not in s.argv]
    saint = [s.argv for s in ddi.steps if "saint-edge" in s.argv]
    assert len(full) == len(saint) == 3
    assert sorted(a[a.index("--seed") + 1] for a in full) == ["0", "1", "2"]
    assert all(a[a.index("--epochs") + 1] == "200" and a[a.index("--patience") + 1] == "200" for a in full)
    assert all(a[a.index("--epochs") + 1] == "2000" and "--data-root" in a for a in saint)
    tests = it["tests"].steps
    assert [s.name for s in tests] == ["pytest-cuda", "pytest-gpu-visible"]
    assert all(s.env["GNNSYS_TEST_DEVICE"] == "cuda" for s in tests)
    assert tests[0].argv[-2:] == list(gs.CUDA_TESTS) and "--collect-only" not in tests[0].argv
    assert "one GPU cannot host two nccl ranks" in it["pipe"].skip
    two = by_name(gs.plan(args(), gs.Probe(2, 16, True, True, "/d")))
    assert "nccl" in two["pipe"].steps[0].argv and two["pipe"].skip is None
    assert two["loading"].skip is None and "--device" in two["loading"].steps[0].argv


def test_cuda_plan_without_what_it_needs():
    it = by_name(gs.plan(args(), NO_GPU))
    assert all(i.skip and "no CUDA" in i.skip for n, i in it.items() if n != "loading")
    it = by_name(gs.plan(args("--only", "ddi"), gs.Probe(1, 16, True, False, None)))
    assert list(it) == ["ddi"] and "ogbl-ddi not found" in it["ddi"].fail
    it = by_name(gs.plan(args("--only", "ddi"), gs.Probe(1, 16, False, False, "/d")))
    assert "ogb" in it["ddi"].fail


def test_cpu_quick_plan():
    it = by_name(gs.plan(args("--device", "cpu", "--quick"), NO_GPU))
    assert "no CUDA" in it["profile"].skip and "no CUDA" in it["pipe"].skip
    for name in ("samplers", "train_step", "cache", "loading"):
        assert it[name].skip is None and "--quick" in it[name].steps[0].argv, name
    ddi = it["ddi"]
    assert len(ddi.steps) == 2 and all(s.argv[s.argv.index("--epochs") + 1] == "1" for s in ddi.steps)
    assert all(s.env["OMP_NUM_THREADS"] == "1" for s in ddi.steps)
    (t,) = it["tests"].steps
    assert "--collect-only" in t.argv and t.env["GNNSYS_TEST_DEVICE"] == "cpu"
    no_data = by_name(gs.plan(args("--device", "cpu", "--quick"), gs.Probe(0, 2, True, False, None)))
    assert "ogbl-ddi not found" in no_data["ddi"].skip


def test_runner_timeout_and_log(tmp_path):
    log = gs.Log(tmp_path / "suite.log")
    out = tmp_path / "r.json"
    code = f"import json, pathlib; print('hello'); pathlib.Path({str(out)!r}).write_text(json.dumps({{'x': 1}}))"
    item = gs.Item("t", "t", budget_s=20, steps=[
        gs.Step("good", [sys.executable, "-c", code], json_out=str(out)),
        gs.Step("bad", [sys.executable, "-c", "raise SystemExit(3)"]),
        gs.Step("slow", [sys.executable, "-c", "import time; print('start', flush=True); time.sleep(60)"]),
    ])
    item.budget_s = 20
    t0 = time.monotonic()
    good, bad, slow = gs.run_item(item, time.monotonic() + 3.0, log, {})
    log.close()
    assert time.monotonic() - t0 < 15
    assert (good.status, good.rc, good.result) == ("ok", 0, {"x": 1})
    assert (bad.status, bad.rc) == ("fail", 3)
    assert slow.status == "timeout" and slow.tail == ["start"]
    text = (tmp_path / "suite.log").read_text()
    assert "good] hello" in text and "slow] start" in text


def step(name, status="ok", result=None, tail=()):
    return gs.StepResult(name, status, 0 if status == "ok" else None, 1.0, list(tail), result)


def test_summary_from_fake_results():
    a = args()
    it = by_name(gs.plan(a, ONE_GPU))
    ref = json.loads(gs.CPU_SAMPLER_TABLE.read_text())
    fake = {"graph": ref["graph"], "budgets": ref["budgets"], "presample_s": {},
            "ours": {k: {"rate": ref["ours"][k]["rate"] * x} for k, x in
                     (("node", 25.0), ("edge", 10.0), ("walk", 20.0), ("mrw", 5.5))}}
    sam = gs.evaluate(it["samplers"], [step("bench_samplers", result=fake)], a)
    assert sam.status == "ok" and [t.met for t in sam.targets] == [True, False, True, True]
    fake_small = dict(fake, graph={"nodes": 20000, "edges": 1})
    assert all(t.met is None for t in gs.evaluate(it["samplers"], [step("s", result=fake_small)], a).targets)

    runs = [step(f"ddi-full-s{i}", result={"test": t}) for i, t in enumerate((0.50, 0.55, 0.60))]
    runs += [step("ddi-saint-edge-s0", result={"test": 0.50}), step("ddi-saint-edge-s1", "timeout"),
             step("ddi-saint-edge-s2", result={"test": 0.52})]
    ddi = gs.evaluate(it["ddi"], runs, a)
    assert ddi.status == "timeout" and "ddi-saint-edge-s1 timeout" in ddi.reason
    assert ddi.figures["full"]["mean"] == pytest.approx(0.55) and ddi.figures["full"]["std"] == pytest.approx(0.05)
    assert ddi.figures["saint-edge"]["n"] == 2
    assert [t.met for t in ddi.targets] == [True, True]  # 0.55 >= 0.5; 0.51 / 0.55 >= 0.9

    tail = ["SKIPPED [1] tests/test_tiered_cuda.py:66: zero-copy gather needs CUDA and Triton",
            "40 passed, 2 skipped in 31.20s"]
    tests = gs.evaluate(it["tests"], [step("pytest-cuda", result=None, tail=tail),
                                      step("pytest-gpu-visible", "fail", tail=["1 failed, 9 passed in 3.0s"])], a)
    assert tests.status == "fail" and tests.figures["pytest-cuda"] == {"passed": 40, "failed": 0, "skipped": 2,
                                                                       "errors": 0}
    assert [t.met for t in tests.targets] == [True, False, False]
    pipe = gs.evaluate(it["pipe"], [], a)
    assert pipe.status == "skipped"

    table = gs.summary_table([sam, ddi, tests, pipe])
    assert "| samplers | ok |" in table and "| ddi | timeout |" in table and "| pipe | skipped |" in table
    assert "3/4" in table and "edge x CPU 10 (>= 20x: MISSED)" in table
    d = gs.summary_dict([sam, ddi, tests, pipe], {"device": "cuda"})
    assert d["ok"] is False and json.loads(json.dumps(d, default=str))["items"][1]["name"] == "ddi"

    quick = args("--device", "cpu", "--quick")
    loading = by_name(gs.plan(quick, NO_GPU))["loading"]
    r = gs.evaluate(loading, [step("bench_loading", result={"runs": {"(a) memory": {"seconds": 1.0},
                                                                     "(b) tiered, host tier": {"seconds": 1.5}},
                                                            "identical_losses": True})], quick)
    assert [(t.name, t.met) for t in r.targets] == [("(b)/(a)", None), ("prefetch hides", None),
                                                    ("identical losses", True)]  # quick: correctness only


def test_one_item_end_to_end_on_cpu(tmp_path, capsys):
    rc = gs.main(["--device", "cpu", "--quick", "--only", "cache,pipe", "--out-dir", str(tmp_path)])
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.log", "summary.json", "summary.md"]
    d = json.loads((tmp_path / "summary.json").read_text())
    items = {i["name"]: i for i in d["items"]}
    assert items["pipe"]["status"] == "skipped" and items["cache"]["status"] == "ok"
    res = items["cache"]["steps"][0]["result"]
    assert res["config"]["quick"] and set(res["capacities"]) == {"0.05", "0.1", "0.2"}
    assert items["cache"]["figures"]["planned_vs_belady"]["0.1"] > 0.5
    assert "| cache | ok |" in capsys.readouterr().out
