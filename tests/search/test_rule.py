"""The pure JSD rule on scripted logit trajectories: what binds, at which scale, and why it waits."""

from __future__ import annotations

import math

import pytest

from iac_components.search.rule import CellTracks, JSDRule, Track, jsd, softmax

OPS = ["a", "b", "c", "d", "e", "f", "g", "h"]
# clear gaps between ranks, in units of lr·s so that the same edge is decided at any learning rate
GAPS = [3.0, 2.0, 1.0, 0.0, -1.0, -2.0, -3.0, -4.0]


def _run(rule, trajectory, lr, checks=8, interval=10):
    """Feed ``trajectory(step) -> logits`` to the rule every ``interval`` arch steps; return the verdicts."""
    track, out = Track(), []
    for n in range(1, checks + 1):
        step = n * interval
        out.append(rule.check_edge(track, dict(zip(OPS, trajectory(step))), step, lr))
    return out


def _drifting(lr, speed=1.0):
    """Logits that keep drifting at ``speed`` x Adam's bound against the ranking: the leading op comes down and the
    others go up, every step (its lead closes: a decision would be premature)."""
    return lambda step: [lr * 30 * g - speed * lr * step * (1 if k == 0 else -1) for k, g in enumerate(GAPS)]


def _widening(lr, speed=1.0):
    """The same speed the other way: the leading op keeps going up and the others down (its lead grows)."""
    return lambda step: [lr * 30 * g + speed * lr * step * (1 if k == 0 else -1) for k, g in enumerate(GAPS)]


def _settled(lr):
    return lambda step: [lr * 30 * g for g in GAPS]


def test_jsd_is_bounded_by_adams_step_and_the_bound_is_reached():
    # logits moved by ±lr·s (the most Adam allows in s steps): JSD close to (lr·s)²/(8 ln 2) bits
    lr, s = 1e-2, 10
    x = dict(zip(OPS, [0.0] * 8))
    y = {o: v + lr * s * (1 if k % 2 else -1) for k, (o, v) in enumerate(x.items())}
    d = jsd(softmax(x), softmax(y))
    assert d <= JSDRule.max_jsd(lr, s) and d == pytest.approx(JSDRule.max_jsd(lr, s), rel=0.02)
    assert JSDRule.max_jsd(lr, s, x) == pytest.approx(d)
    # a peaked distribution can move less in JSD: its own bound is smaller
    peaked = dict(zip(OPS, [4.0] + [0.0] * 7))
    assert JSDRule.max_jsd(lr, s, peaked) < 0.5 * JSDRule.max_jsd(lr, s)


def test_the_jsd_condition_holds_back_a_drift_that_closes_the_leads():
    """All three edges lead by far more than the margin at first and keep their leaders over these checks: only
    the movement differs. A drift against the leaders holds the decision back; a settled edge is cut; a drift that
    widens the leaders' lead goes the decision's way and does not hold it back."""
    lr = 1e-2
    rule = JSDRule(window=10, epsilon=0.1, patience=2, margin=1.0)
    closing = _run(rule, _drifting(lr, speed=0.5), lr, checks=3)  # covers 0.25 of the bound: moving at ε = 0.1
    settled = _run(rule, _settled(lr), lr)
    widening = _run(rule, _widening(lr, speed=0.5), lr)
    assert [v.status for v in closing] == ["filling_window", "moving", "moving"]
    assert any(v.jsd_only for v in closing)  # the movement test alone stood in the way
    assert [v.status for v in settled][:3] == ["filling_window", "waiting", "cut"]
    cut = next(v for v in widening if v.status == "cut")
    assert cut.moving and cut.widening and cut.keep == ["a"]
    # changing ε changes the decision: at ε = 0.5 the closing drift counts as settled
    relaxed = _run(JSDRule(window=10, epsilon=0.5, patience=2, margin=1.0), _drifting(lr, speed=0.5), lr, checks=3)
    assert relaxed[2].status == "cut" and not relaxed[2].widening


@pytest.mark.parametrize("lr", [6e-4, 3e-3, 1e-2])
def test_the_rule_binds_the_same_way_at_any_arch_learning_rate(lr):
    rule = JSDRule(window=10, epsilon=0.1, patience=2, margin=1.0)
    drifting = [v.status for v in _run(rule, _drifting(lr, speed=0.5), lr, checks=3)]
    settled = [v.status for v in _run(rule, _settled(lr), lr)]
    reference_d = [v.status for v in _run(rule, _drifting(1e-4, speed=0.5), 1e-4, checks=3)]
    reference_s = [v.status for v in _run(rule, _settled(1e-4), 1e-4)]
    assert drifting == reference_d and settled == reference_s
    assert "cut" in settled and "cut" not in drifting


def test_a_fixed_epsilon_in_bits_would_never_bind_at_the_bundles_learning_rate():
    """Why ε is relative: at lr 6e-4 and 10 steps per check, the largest reachable JSD is ~6e-6 bits,
    far below the first version's fixed 1e-3, so an edge drifting at full speed looked settled."""
    assert JSDRule.max_jsd(6e-4, 10) < 1e-5
    v = _run(JSDRule(window=10, epsilon=0.1), _drifting(6e-4, speed=1.0), 6e-4, checks=2)
    assert v[-1].d < 1e-3 and v[-1].status == "moving"


def test_no_cut_within_the_margin_in_logits():
    lr, s = 1e-2, 10
    rule = JSDRule(window=10, epsilon=0.1, patience=1, margin=1.0, settle=None)  # need a lead of 2·lr·s = 0.2 logits
    close = [2.0, 2.0, 2.0, 1.19, 1.0, 0.0, 0.0, 0.0]  # the 4th kept leads the best dropped by 0.19
    verdicts = _run(rule, lambda step: close, lr, checks=4, interval=s)
    assert all(v.status != "cut" for v in verdicts) and verdicts[-1].status == "undecided"
    assert verdicts[-1].lead == pytest.approx(0.19) and verdicts[-1].margin == pytest.approx(0.2)
    wide = list(close)
    wide[3] = 1.21
    assert _run(rule, lambda step: wide, lr, checks=4, interval=s)[-1].status == "cut"


def test_leaders_that_change_reset_the_count():
    lr = 1e-2
    rule = JSDRule(window=10, epsilon=0.5, patience=2, margin=0.0)
    # the 4th and 5th trade places every check, and so do the 1st and 2nd, and the 2nd and 3rd: no size keeps its
    # leaders from one check to the next
    swap = lambda step: ([4.002, 4, 3.998, 2.002, 2, 1, 0, -1] if (step // 10) % 2  # noqa: E731
                         else [3.998, 4.002, 4, 1.998, 2.002, 1, 0, -1])
    statuses = [v.status for v in _run(rule, swap, lr)]
    assert "cut" not in statuses and statuses.count("leaders_changed") >= 6
    # the same swaps at the bottom only: the leaders at the top are the same, and a cut to them goes ahead
    bottom = lambda step: [5, 4, 3, 2 + (0.002 if (step // 10) % 2 else -0.002), 2, 1, 0, -1]  # noqa: E731
    assert "cut" in [v.status for v in _run(rule, bottom, lr)]


def test_nodes_keep_their_top_two_inputs_by_beta_and_cuts_come_nodes_first():
    rule = JSDRule(window=10, epsilon=0.5, patience=1, margin=0.5)
    tracks = CellTracks()
    alphas = {"0->3": {"a": 1.0}, "1->3": {"a": 0.0, "b": 0.0}, "2->3": {"a": 0.0, "b": 0.0}}
    betas = {"3": {"0": 0.0, "1": 1.5, "2": 1.5}}
    for step in (10, 20):
        verdicts, cuts = rule.check_cell(tracks, alphas, betas, step, 1e-2)
    # edge 0->3 is already down to one op (p = 1) while the others are uniform: β alone decides
    assert [(c.kind, c.where, c.kept, c.dropped) for c in cuts] == [("node", "3", ["1", "2"], ["0"])]
    assert "0->3" not in tracks.edge


def test_observe_only_records_verdicts_and_cuts_nothing():
    rule = JSDRule(window=10, epsilon=0.5, patience=1, margin=0.0)
    tracks = CellTracks()
    alphas = {"0->2": dict(zip(OPS, GAPS))}
    for step in (10, 20, 30):
        verdicts, cuts = rule.check_cell(tracks, alphas, {"2": {"0": 0.0, "1": 0.0}}, step, 1e-2, prune=False)
    assert cuts == [] and verdicts["edge"]["0->2"].status == "cut"  # what it would have done


def test_non_finite_logits_are_refused():
    with pytest.raises(ValueError, match="non-finite logit for 'b' at arch step 7"):
        JSDRule(window=10).check_edge(Track(), {"a": 0.0, "b": math.nan}, 7, 1e-2)


@pytest.mark.parametrize("bad", [{"epsilon": 0}, {"window": 0}, {"patience": 0}, {"margin": -1}, {"keep_schedule": (4, 2)},
                                 {"settle": 0}])
def test_bad_rule_numbers_are_refused(bad):
    with pytest.raises(ValueError):
        JSDRule(**bad)


def test_track_state_round_trips():
    rule, track = JSDRule(window=10), Track()
    for step in (10, 20, 30):
        rule.check_edge(track, dict(zip(OPS, GAPS)), step, 1e-2)
    again = Track.from_state(track.state_dict())
    assert again == track


def test_an_edge_led_by_none_is_decided_among_the_other_ops():
    rule = JSDRule(window=10, epsilon=0.5, patience=1, margin=0.5)
    track = Track()
    for step in (10, 20):
        v = rule.check_edge(track, {"none": 5.0, "conv": 1.0, "pool": 0.0}, step, 1e-2)
    assert v.keep == ["conv"] and v.status == "cut"  # none may not be the last op: conv leads the others
    track = Track()
    for step in (10, 20):
        v = rule.check_edge(track, {"none": 5.0, "conv": 1.0}, step, 1e-2)
    assert v.keep == ["conv"] and v.status == "cut" and v.lead == float("inf")  # nothing else to lead


def test_a_random_walk_of_adam_sized_steps_covers_about_one_over_s_of_the_bound():
    """Why the window counts arch steps: the step noise alone gives d / D_max ≈ 1/s, so a window of s steps must
    make 1/s small against ε, while a consistent drift stays near the bound whatever s is."""
    import random

    rnd = random.Random(0)
    lr = 1e-3
    for s in (8, 64):
        noise, drift = [], []
        for trial in range(40):
            walk = [0.0] * 8
            for _ in range(s):
                walk = [w + lr * rnd.choice((-1, 1)) for w in walk]
            start = dict(zip(OPS, [0.0] * 8))
            noise.append(jsd(softmax(start), softmax(dict(zip(OPS, walk)))) / JSDRule.max_jsd(lr, s, start))
            drift.append(jsd(softmax(start), softmax({o: lr * s * (1 if k % 2 else -1) for k, o in enumerate(OPS)}))
                         / JSDRule.max_jsd(lr, s, start))
        mean_noise = sum(noise) / len(noise)
        assert mean_noise == pytest.approx(1 / s, rel=0.5) and min(drift) > 0.9
    # at the default window (32 steps) the noise sits well below ε = 0.1
    assert JSDRule().window == 32 and 1 / JSDRule().window < JSDRule().epsilon / 3


def test_the_default_margin_is_the_square_root_of_epsilon():
    """An edge that passes the movement test covers at most about √ε of Adam's reach over a window, so it cannot
    close a lead of √ε·2·lr·s within the next one."""
    assert JSDRule(epsilon=0.09, margin=None).margin == pytest.approx(0.3)
    assert JSDRule(epsilon=0.25, margin=0.7).margin == 0.7


def test_a_tie_the_search_cannot_resolve_is_settled_after_settle_x_patience_checks():
    lr = 1e-2
    tie = lambda step: [1.0, 0.999, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0]  # noqa: E731 - a and b stay apart by 0.001
    never = [v.status for v in _run(JSDRule(window=10, epsilon=0.1, patience=2, margin=1.0, settle=None), tie, lr)]
    assert "cut" in never[:3]  # the two leaders lead the rest: the edge goes to 2 at once ...

    def feed(rule, trajectory, n=12):
        track, out = Track(), []
        for k in range(1, n + 1):
            v = rule.check_edge(track, trajectory(k), k * 10, lr)
            out.append(v)
            if v.status == "cut":
                break
        return out

    # ... and between the two, after 3 x 2 checks whose lead never cleared the margin: a, by its mean logit
    v = feed(JSDRule(window=10, epsilon=0.1, patience=2, margin=1.0, settle=3), lambda k: {"a": 1.0, "b": 0.999})
    assert len(v) == 6 and v[-1].status == "cut" and v[-1].settled and v[-1].keep == ["a"] and v[-1].lead < v[-1].margin
    # a tie whose order flips every check is settled the same way, by the mean over those checks
    flip = lambda k: {"a": 1.0 + (0.004 if k % 2 else -0.002), "b": 1.0}  # noqa: E731 - a: mean +0.001 over six
    v = feed(JSDRule(window=10, epsilon=0.1, patience=2, margin=1.0, settle=3), flip)
    assert v[-1].settled and v[-1].keep == ["a"]
    # off (the bundles' default), a tie is never cut
    assert all(x.status != "cut" for x in feed(JSDRule(window=10, epsilon=0.1, patience=2, margin=1.0, settle=None),
                                                lambda k: {"a": 1.0, "b": 0.999}))  # fmt: skip


def test_a_tie_below_a_leading_none_is_settled_and_none_is_never_the_last_op():
    rule = JSDRule(window=10, epsilon=0.1, patience=2, margin=1.0, settle=3)
    track, v = Track(), None
    for k in range(1, 30):
        flip = 0.004 if k % 2 else -0.002
        v = rule.check_edge(track, {"none": 3.0, "conv": 1.0 + flip, "pool": 1.0}, k * 10, 1e-2)
        if v.status == "cut":
            break
    assert v.status == "cut" and v.settled and v.keep == ["none", "conv"]


def test_a_checkpoint_of_the_earlier_rule_is_refused_in_one_line():
    with pytest.raises(ValueError, match="earlier version of the rule"):
        Track.from_state({"past": [], "stable": 0, "top": ["a"]})
