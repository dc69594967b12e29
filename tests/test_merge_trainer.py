"""JointTrainer on tiny models and learnable random data (no workload needed)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from gemel.analyze import analyze_models
from gemel.merge.config import MergeConfig
from gemel.merge.trainer import JointTrainer, TrainerConfig, TrainQuery, unique_parameters
from gemel.merge.tying import apply_merge
from merge_helpers import tiny_models


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared machine
    yield
    torch.set_num_threads(threads)


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(1) == y).float()


def _data(seed: int, n: int, channel: int):
    """16 px images; the label says whether ``channel`` is brighter than the others."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 16, 16, generator=g)
    y = (torch.rand(n, generator=g) < 0.5).long()
    x[:, channel] += 0.5 * (2 * y.float() - 1)[:, None, None]
    return x, y


def _query(name, model, channel, target, loss=F.cross_entropy, seed=0):
    tx, ty = _data(seed, 256, channel)
    vx, vy = _data(seed + 1, 64, channel)
    return TrainQuery(
        name,
        model,
        tx,
        ty,
        vx,
        vy,
        lambda m, x, y: loss(m(x), y),
        lambda m, x, y: float(_accuracy(m(x), y).mean()),
        target,
    )


def _tied_pair():
    models = tiny_models(("a", "b"))
    apply_merge(models, MergeConfig.from_instances(analyze_models(models).instances))
    return models


def test_every_step_takes_gradients_from_every_query_and_shared_params_train_once():
    models = _tied_pair()
    assert len(unique_parameters(list(models.values()))) < 2 * len(list(models["a"].parameters()))
    calls = {"a": 0, "b": 0}

    def counting(name):
        def loss(out, y):
            calls[name] += 1
            return F.cross_entropy(out, y)

        return loss

    queries = [
        _query("a", models["a"], 0, 1.01, counting("a")),
        _query("b", models["b"], 1, 1.01, counting("b")),
    ]
    shared = models["a"][3].weight
    assert models["b"][3].weight is shared
    seen = [shared.detach().clone()]
    trainer = JointTrainer(TrainerConfig(epochs=1, batch_size=32, give_up_after=5))
    result = trainer.train(queries, seed=0, on_step=lambda _: seen.append(shared.detach().clone()))
    assert result.steps == 8 and calls == {"a": 8, "b": 8}
    assert all(not torch.equal(x, y) for x, y in itertools.pairwise(seen))
    assert result.queries["a"].samples == 256


def test_retraining_is_deterministic_per_seed():
    def run(seed):
        models = _tied_pair()
        queries = [_query("a", models["a"], 0, 1.01), _query("b", models["b"], 1, 1.01)]
        last: list[torch.Tensor] = []

        def capture(_step: int) -> None:
            last[:] = [p.detach().clone() for p in models["a"].parameters()]

        JointTrainer(TrainerConfig(epochs=1, give_up_after=5)).train(
            queries, seed=seed, on_step=capture
        )
        return last

    one, again, other = run(1), run(1), run(2)
    assert all(torch.equal(x, y) for x, y in zip(one, again, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(one, other, strict=True))


def test_learns_and_stops_once_every_query_meets_its_target():
    models = _tied_pair()
    queries = [_query("a", models["a"], 0, 0.8), _query("b", models["b"], 1, 0.8)]
    result = JointTrainer(TrainerConfig(epochs=30, lr=3e-3)).train(queries, seed=0)
    assert result.stop == "met", result.history
    assert result.epochs < 30
    assert all(o.met and o.accuracy > o.accuracy_tied for o in result.queries.values())
    # the models are left in the state that was validated
    assert JointTrainer().validate(queries) == {q: o.accuracy for q, o in result.queries.items()}


def test_already_at_target_trains_nothing():
    models = tiny_models(("a",))
    result = JointTrainer().train([_query("a", models["a"], 0, 0.0)], seed=0)
    assert result.stop == "met" and result.steps == 0 and result.samples == 0


def test_nan_loss_ends_the_step_and_keeps_the_last_good_state():
    models = tiny_models(("a",))
    before = [p.detach().clone() for p in models["a"].parameters()]

    def nan_after_two(out, y, calls=[0]):  # noqa: B006 - a call counter
        calls[0] += 1
        loss = F.cross_entropy(out, y)
        return loss * float("nan") if calls[0] > 2 else loss

    result = JointTrainer(TrainerConfig(epochs=5, give_up_after=5)).train(
        [_query("a", models["a"], 0, 1.01, nan_after_two)], seed=0
    )
    assert result.stop == "diverged" and result.steps == 2
    after = list(models["a"].parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert all(torch.equal(x, y) for x, y in zip(before, after, strict=True))  # best = initial


def test_a_hopeless_query_is_given_up_early():
    models = tiny_models(("a",))
    query = _query("a", models["a"], 0, 0.9)
    g = torch.Generator().manual_seed(5)
    query.val_targets = torch.randint(0, 2, (len(query.val_targets),), generator=g)  # noise
    result = JointTrainer(TrainerConfig(epochs=20, give_up_after=1)).train([query], seed=0)
    assert result.stop == "gave_up" and result.queries["a"].gave_up
    assert result.epochs < 5
