"""Planner strategies and the merge session, with retraining faked by rule (fast and exact)."""

from __future__ import annotations

import io
import json

import pytest
import torch
from rich.console import Console

from gemel.analyze import analyze_models
from gemel.errors import GemelError
from gemel.merge.journal import Journal
from gemel.merge.planner import common_stem, get_strategy
from gemel.merge.session import MergeSession, connected_queries, step_seed
from gemel.merge.tying import shared_locations
from gemel.merge.view import MergeView
from merge_helpers import FakeRetrainer, tiny_models

NAMES = ("q0", "q1", "q2")


def _session(tmp_path, retrainer, names=NAMES, *, resume=False, **kw):
    models = tiny_models(names)
    analysis = analyze_models(models)
    journal = Journal.open(tmp_path, {"strategy": "test", "seed": 0}, resume=resume)
    session = MergeSession(models, analysis.instances, retrainer, journal, **kw)
    return session, analysis


def _shared_queries(models) -> set[frozenset[str]]:
    return {frozenset(q for q, _ in locs) for locs in shared_locations(models)}


def _state(models):
    return {
        (q, n): (id(p), p.detach().clone())
        for q, m in models.items()
        for n, p in m.named_parameters(remove_duplicate=False)
    }


def test_gemel_shares_everything_when_nothing_conflicts(tmp_path):
    fake = FakeRetrainer(NAMES)
    session, analysis = _session(tmp_path, fake)
    get_strategy("gemel").run(session)
    assert session.config.shared_bytes(session.models) == analysis.max_savings_bytes
    assert _shared_queries(session.models) == {frozenset(NAMES)}
    statuses = [r["status"] for r in session.journal.steps]
    assert statuses and set(statuses) == {"accepted"}
    # seeds are derived from the run seed and the step index
    assert [seed for _, seed in fake.calls] == [step_seed(0, i) for i in range(len(fake.calls))]


def test_gemel_drops_a_conflicting_query_and_keeps_the_rest(tmp_path):
    fake = FakeRetrainer(NAMES, conflicts={"q2": {"q0", "q1"}})
    session, analysis = _session(tmp_path, fake)
    before = _state(session.models)
    get_strategy("gemel").run(session)
    models = session.models
    assert session.journal.steps[0]["status"] == "partial"
    assert session.journal.steps[0]["failed"] == ["q2"]
    assert _shared_queries(models) == {frozenset({"q0", "q1"})}
    assert "q2" not in session.config.queries_touched
    # q2 got its pre-step parameters back: same objects, same values
    for n, p in models["q2"].named_parameters():
        obj, value = before[("q2", n)]
        assert id(p) == obj and torch.equal(p, value)
    expected = sum(i.nbytes for i in analysis.instances)  # one copy saved per instance
    assert session.config.shared_bytes(models) == expected
    # every published configuration meets every target
    assert all(fake._ok(models, q) for q in NAMES)


def test_halving_back_off_keeps_the_half_that_fits(tmp_path):
    # q1 may hold at most two shared layers: the 3-conv group fails, its heavy half fits
    fake = FakeRetrainer(("q0", "q1"), limit={"q1": 2})
    session, analysis = _session(tmp_path, fake, names=("q0", "q1"))
    get_strategy("gemel").run(session)
    steps = session.journal.steps
    # the light half is tried once the heavy half is in; it breaks the limit again
    assert [s["label"] for s in steps] == ["group 0", "group 0 half", "group 0 rest", "group 1"]
    assert [s["status"] for s in steps] == ["rejected", "accepted", "rejected", "rejected"]
    convs = [i for i in analysis.instances if i.kind == "Conv2d"]
    assert session.config.shared_bytes(session.models) == convs[0].savings + convs[1].savings


def test_rejected_step_restores_objects_and_values(tmp_path):
    fake = FakeRetrainer(("q0", "q1"), conflicts={"q0": {"q1"}, "q1": {"q0"}})
    session, _ = _session(tmp_path, fake, names=("q0", "q1"))
    before = _state(session.models)
    get_strategy("all").run(session)
    assert [s["status"] for s in session.journal.steps] == ["rejected"]
    assert fake.calls  # it did retrain (and nudge weights) before rolling back
    after = _state(session.models)
    assert after.keys() == before.keys()
    for k, (obj, value) in before.items():
        assert after[k][0] == obj and torch.equal(after[k][1], value)


def test_partial_step_is_rejected_when_the_published_config_misses(tmp_path):
    # q0 only works while sharing with q2, and q2 conflicts with q1: dropping q2 breaks q0
    fake = FakeRetrainer(NAMES, conflicts={"q2": {"q1"}}, needs={"q0": "q2"})
    session, _ = _session(tmp_path, fake)
    before = _state(session.models)
    get_strategy("all").run(session)
    (step,) = session.journal.steps
    assert step["failed"] == ["q2"] and step["status"] == "rejected"
    assert step["accuracy"]["q0"]["accuracy_published"] < 0.8
    assert _shared_queries(session.models) == set()
    assert all(
        torch.equal(p, before[(q, n)][1]) for (q, n), (_, p) in _state(session.models).items()
    )


def test_stem_finds_the_longest_prefix_that_meets_targets(tmp_path):
    fake = FakeRetrainer(("q0", "q1"), limit={"q0": 2})
    session, _ = _session(tmp_path, fake, names=("q0", "q1"))
    stem = common_stem(session.models)
    assert [inst.members[0][1] for inst in stem] == ["0", "3", "6", "10"]
    get_strategy("stem").run(session)
    shared = sorted(p for locs in shared_locations(session.models) for q, p in locs if q == "q0")
    assert shared == ["0", "3"]
    assert session.config.shared_bytes(session.models) == stem[0].savings + stem[1].savings


def test_none_and_step_budget(tmp_path):
    fake = FakeRetrainer(NAMES)
    session, _ = _session(tmp_path / "none", fake)
    get_strategy("none").run(session)
    assert session.journal.steps == [] and not fake.calls
    session, _ = _session(tmp_path / "one", fake, max_steps=1)
    get_strategy("gemel").run(session)
    assert len(session.journal.steps) == 1


def test_unknown_strategy_is_a_user_error():
    with pytest.raises(GemelError, match="unknown merge strategy 'best'"):
        get_strategy("best")


def test_connected_queries_follow_shared_layers(tmp_path):
    fake = FakeRetrainer(NAMES)
    session, analysis = _session(tmp_path, fake)
    cfg = session.config.add([analysis.instances[0]])  # shared by all three
    assert connected_queries({"q0"}, cfg) == set(NAMES)
    assert connected_queries({"q0"}, session.config) == {"q0"}


def test_resume_replays_journaled_steps_without_retraining(tmp_path):
    conflicts = {"q2": {"q0", "q1"}}
    reference, _ = _session(tmp_path / "ref", FakeRetrainer(NAMES, conflicts=conflicts))
    get_strategy("gemel").run(reference)

    def crash(index: int) -> None:
        if index == 2:
            raise RuntimeError("injected crash")

    first, _ = _session(tmp_path / "run", FakeRetrainer(NAMES, conflicts=conflicts), on_step=crash)
    with pytest.raises(RuntimeError, match="injected"):
        get_strategy("gemel").run(first)
    assert len(first.journal.steps) == 2
    # the interrupted step was undone in memory too: the models hold the accepted sharing
    live = {frozenset(locs) for locs in shared_locations(first.models)}
    assert live == {frozenset(layer.members) for layer in first.config.shared}
    fake = FakeRetrainer(NAMES, conflicts=conflicts)
    resumed, _ = _session(tmp_path / "run", fake, resume=True)
    get_strategy("gemel").run(resumed)
    assert fake.calls[0][1] == step_seed(0, 2)  # steps 0-1 were replayed
    assert resumed.config == reference.config
    ref_steps = [(s["label"], s["status"]) for s in reference.journal.steps]
    assert [(s["label"], s["status"]) for s in resumed.journal.steps] == ref_steps


def test_journal_refuses_reuse_and_changed_settings_and_drops_torn_lines(tmp_path):
    Journal.open(tmp_path, {"strategy": "gemel", "seed": 0}, resume=False)
    # no step finished yet: nothing to lose, so a fresh start is allowed
    journal = Journal.open(tmp_path, {"strategy": "gemel", "seed": 1}, resume=False)
    journal.append_step({"index": 0, "status": "accepted"})
    with pytest.raises(GemelError, match="already holds a merge run"):
        Journal.open(tmp_path, {"strategy": "gemel", "seed": 1}, resume=False)
    with pytest.raises(GemelError, match="seed was 1, now 2"):
        Journal.open(tmp_path, {"strategy": "gemel", "seed": 2}, resume=True)
    with open(journal.path, "a") as f:
        f.write(json.dumps({"kind": "step", "index": 1})[:10])  # a crash mid-write
    again = Journal.open(tmp_path, {"strategy": "gemel", "seed": 1}, resume=True)
    assert [s["index"] for s in again.steps] == [0]
    assert journal.path.read_text().endswith("\n")
    with pytest.raises(GemelError, match="no merge journal"):
        Journal.open(tmp_path / "empty", {}, resume=True)


def test_live_view_shows_steps_savings_and_accepted_accuracy(tmp_path):
    fake = FakeRetrainer(NAMES, conflicts={"q2": {"q0", "q1"}})
    console = Console(file=io.StringIO(), width=120)
    session, analysis = _session(tmp_path, fake)
    view = MergeView(
        "gemel", analysis.max_savings_bytes, fake.targets, dict.fromkeys(NAMES, 0.9), console
    )
    session.view = view
    with view:
        get_strategy("gemel").run(session)
    text = console.file.getvalue()
    assert "step 0 group 0: partial (missed: q2)" in text
    assert "step 1 group 0 half: rejected" in text
    assert view.accuracy == dict.fromkeys(NAMES, 0.9)  # the accepted state, not a failed try
    assert view.saved == session.config.shared_bytes(session.models)
