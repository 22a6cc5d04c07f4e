"""Layer arguments (issue 17, item 4): ``--layer-arg NAME=VALUE`` reaches built-in, registry,
user-file and PyG layer constructors; a constructor that does not fit is one
``gnnsys: error:`` line naming the argument and the flag, exit status 2."""

from __future__ import annotations

import pytest
from gnnsys.models import register_layer
from torch import nn

from gnnsys.api import model_for
from gnnsys.cli import main, parse_layer_args
from gnnsys.config import TrainConfig
from gnnsys.datasets import load_dataset
from gnnsys.errors import ConfigError

USER_LAYER = '''
import torch
from torch import nn


class ScaledLinear(nn.Module):
    def __init__(self, in_dim, out_dim, scale=1.0):
        super().__init__()
        self.lin, self.scale = nn.Linear(in_dim, out_dim), scale

    def forward(self, x, edge_index, edge_weight=None):
        return self.scale * self.lin(x)
'''


@register_layer("test-scaled")
class _Scaled(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, *, scale: float):
        super().__init__()
        self.lin, self.scale = nn.Linear(in_dim, out_dim), scale

    def forward(self, x, edge_index, edge_weight=None):
        return self.scale * self.lin(x)


@pytest.fixture(scope="module")
def sbm():
    return load_dataset("synthetic-sbm")


def _layers(ds, **kw):
    cfg = TrainConfig(**kw).resolved(ds.name, ds.task)
    return list(model_for(ds, cfg).layers)


def test_parse_layer_args():
    assert parse_layer_args(["K=3", "p=0.5", "bias=False", "aggr=max", "s='a b'", "t=(1, 2)"]) == \
        {"K": 3, "p": 0.5, "bias": False, "aggr": "max", "s": "a b", "t": (1, 2)}
    for bad in ("K", "=3", "1x=2", "K=[1,"):
        with pytest.raises(ConfigError, match="--layer-arg"):
            parse_layer_args([bad])


def test_arguments_reach_every_kind_of_layer(sbm, tmp_path):
    gat = _layers(sbm, layer="gat", layer_args={"heads": 4, "negative_slope": 0.1})
    assert gat[0].heads == 4 and gat[0].negative_slope == 0.1 and gat[-1].heads == 1  # classifier: one head
    assert all(lay.scale == 2.5 for lay in _layers(sbm, layer="test-scaled", layer_args={"scale": 2.5}))
    f = tmp_path / "scaled.py"
    f.write_text(USER_LAYER)
    assert all(lay.scale == 3 for lay in _layers(sbm, layer=f"{f}:ScaledLinear", layer_args={"scale": 3}))
    cheb = _layers(sbm, layer="torch_geometric.nn:ChebConv", layer_args={"K": 3})
    assert all(len(lay.lins) == 3 for lay in cheb)
    # the ForwardGNN trainer builds its layers with them too
    from gnnsys.trainers.forward.common import ForwardSettings, make_layer

    s = ForwardSettings.from_config(TrainConfig(trainer="forward", layer="gat", layer_args={"heads": 2}), "node")
    assert make_layer(s, 8, 16).conv.heads == 2


def test_cli_chebconv_trains(capsys):
    assert main(["train", "--layer", "torch_geometric.nn:ChebConv", "--layer-arg", "K=3", "--epochs", "3",
                 "--quiet"]) == 0
    assert "ChebConv x2" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["--layer", "torch_geometric.nn:ChebConv"], ["'K'", "--layer-arg K=VALUE"]),
    (["--layer", "sage", "--layer-arg", "foo=1"], ["'foo'", "--layer-arg foo"]),
    (["--layer", "torch_geometric.nn:ChebConv", "--layer-arg", "K=2", "--layer-arg", "foo=1"],
     ["'foo'", "--layer-arg foo"]),
    (["--layer", "test-scaled"], ["'scale'", "--layer-arg scale=VALUE"]),
    (["--layer", "gat", "--layer-arg", "heads=3"], ["heads=3", "--layer-arg"]),
    (["--layer-arg", "K"], ["--layer-arg expects NAME=VALUE"]),
])
def test_misfit_constructor_is_one_error_line(argv, words, capsys):
    assert main(["train", "--epochs", "1", "--quiet", "--hidden", "16", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gnnsys: error: "), err
    for w in words:
        assert w in err[0], err


def test_layer_args_in_a_config_file_and_extra(tmp_path, sbm):
    p = tmp_path / "run.json"
    p.write_text('{"layer": "gat", "layer_args": {"heads": 2}}')
    cfg = TrainConfig.from_file(p)
    assert cfg.layer_kwargs() == {"heads": 2}
    from gnnsys.cli import build_parser, config_from_args

    args = build_parser().parse_args(["train", "--config", str(p), "--layer-arg", "negative_slope=0.1"])
    assert config_from_args(args).layer_args == {"heads": 2, "negative_slope": 0.1}  # flags add to the file
    cfg = TrainConfig(layer="gat", extra={"layer_kwargs": {"heads": 4, "negative_slope": 0.3}}, layer_args={"heads": 2})
    assert cfg.layer_kwargs() == {"heads": 2, "negative_slope": 0.3}  # layer_args win
    with pytest.raises(ConfigError, match="layer_args"):
        TrainConfig(layer_args={"1bad": 2}).validate()
