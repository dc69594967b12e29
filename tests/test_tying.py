"""Merge configurations and tying live models' parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bundle_models import build, make_workload, tie_all
from gemel.analyze import find_instances
from gemel.errors import GemelError
from gemel.merge import MergeConfig, SharedLayer, Snapshot, apply_merge, shared_locations, untie

torch.set_num_threads(1)

THREE = (("a", "small_convnet", 3), ("b", "small_convnet", 3), ("c", "small_convnet", 5))


@pytest.fixture
def models() -> dict[str, nn.Module]:
    return build(make_workload(*THREE))


def outputs(models: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        return {q: m(x) for q, m in models.items()}


def test_tying_makes_one_parameter_object_and_keeps_the_first_models_outputs(models):
    before = outputs(models)
    config = tie_all(models)
    assert config.queries_touched == {"a", "b", "c"}
    for layer in config.shared:
        modules = [models[q].get_submodule(p) for q, p in layer.members]
        for m in modules[1:]:
            assert m.weight is modules[0].weight
            assert m.bias is modules[0].bias
    # the first member of every instance is query 'a': its outputs are unchanged
    after = outputs(models)
    assert torch.equal(after["a"], before["a"])
    assert not torch.equal(after["b"], before["b"])
    # norm layers and buffers stay private
    assert models["a"][1].weight is not models["b"][1].weight
    assert models["a"][1].running_mean is not models["b"][1].running_mean
    # the heads differ in shape between a/b and c: only a and b share one
    assert models["a"][8].weight is models["b"][8].weight
    assert models["c"][8].weight is not models["a"][8].weight


def test_gradients_from_every_model_accumulate_in_a_shared_tensor(models):
    tie_all(models)
    x = torch.randn(2, 3, 16, 16)
    models["a"](x).sum().backward()
    grad_a = models["a"][0].weight.grad.clone()
    models["b"](x).sum().backward()
    assert models["b"][0].weight.grad is models["a"][0].weight.grad
    assert not torch.equal(models["a"][0].weight.grad, grad_a)


def test_mean_init_starts_from_the_members_mean(models):
    w = [models[q][3].weight.detach().clone() for q in "abc"]
    tie_all(models, init="mean")
    assert torch.allclose(models["c"][3].weight, (w[0] + w[1] + w[2]) / 3)
    assert models["c"][3].weight is models["a"][3].weight


def test_reapplying_a_grown_configuration_keeps_trained_shared_weights(models):
    instances = find_instances(models)
    first = MergeConfig.from_instances(instances[:1])
    apply_merge(models, first)
    q, path = first.shared[0].members[0]
    shared = models[q].get_submodule(path).weight
    with torch.no_grad():
        shared.add_(1.0)
    trained = shared.detach().clone()
    apply_merge(models, first.add(instances[1:]), init="mean")
    assert models[q].get_submodule(path).weight is shared
    assert torch.equal(shared, trained)


def test_snapshot_restore_undoes_ties_and_values(models):
    before = outputs(models)
    snap = Snapshot.take(models, ["a", "b", "c"])
    tie_all(models, init="mean")
    with torch.no_grad():
        models["a"][0].weight.mul_(3)
        models["b"][1].running_mean.add_(1)
    snap.restore()
    assert shared_locations(models) == []
    after = outputs(models)
    for q in before:
        assert torch.equal(after[q], before[q])


def test_untie_gives_private_copies(models):
    config = tie_all(models)
    layer = config.shared[0]
    q, path = layer.members[-1]
    untie(models, [(q, path)])
    mine = models[q].get_submodule(path).weight
    other = models[layer.members[0][0]].get_submodule(path).weight
    assert mine is not other and torch.equal(mine, other)
    remaining = config.without([(q, path)])
    assert (q, path) not in remaining.members
    assert len(remaining.shared) == len(config.shared) - (len(layer.members) == 2)


def test_config_add_merges_overlapping_instances_and_round_trips(tmp_path):
    config = MergeConfig().add([SharedLayer(members=(("a", "0"), ("b", "0")))])
    config = config.add([SharedLayer(members=(("b", "0"), ("c", "0")))])
    assert [layer.members for layer in config.shared] == [(("a", "0"), ("b", "0"), ("c", "0"))]
    assert config.without_queries(["a", "b"]).shared == ()
    config.save(tmp_path / "merge.json")
    assert MergeConfig.load(tmp_path / "merge.json") == config
    with pytest.raises(GemelError, match="query 'a' appears twice"):
        config.add([SharedLayer(members=(("c", "0"), ("a", "3")))])


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ((("a", "0"), ("zz", "0")), "unknown query 'zz'"),
        ((("a", "0"), ("b", "nope")), "query 'b' has no module 'nope'"),
        ((("a", "1"), ("b", "1")), "BatchNorm2d, which is not a shareable"),
        ((("a", "0"), ("b", "3")), "only layers with equal signatures"),
    ],
)
def test_configurations_that_do_not_fit_are_refused(models, members, message):
    config = MergeConfig(shared=(SharedLayer(members=members),))
    with pytest.raises(GemelError, match=message):
        apply_merge(models, config)
