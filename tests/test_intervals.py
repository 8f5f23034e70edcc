"""The bootstrap behind every trial's interval and the trials tied with the best (model/intervals.py):
pure numpy, on made-up votes and scores."""

import numpy as np
import pytest

from model.intervals import agreement, bootstrap_agreement, vote_hits


def _votes(rng, n_texts=300, n_groups=200, per_group=5):
    """Best-worst-like votes: each group draws 4 texts and casts `per_group` votes among them, ordered by a
    true severity with some noise. Returns (less, more, groups, severity)."""
    severity = rng.normal(size=n_texts)
    less, more, groups = [], [], []
    for g in range(n_groups):
        tup = rng.choice(n_texts, size=4, replace=False)
        seen = severity[tup] + rng.logistic(size=4)
        order = tup[np.argsort(seen)]
        for a, b in [(0, 3), (1, 3), (2, 3), (0, 1), (0, 2)][:per_group]:
            less.append(order[a]), more.append(order[b]), groups.append(g)
    return np.array(less), np.array(more), np.array(groups), severity


def _scores(rng, severity, noise):
    return (severity + noise * rng.normal(size=len(severity))).astype(np.float32)


def test_hits_are_strict_ties_are_misses():
    scores = np.array([0.0, 1.0, 1.0])
    assert vote_hits(scores, np.array([0, 1, 2]), np.array([1, 2, 0])).tolist() == [True, False, False]
    assert agreement(scores, np.array([0, 1]), np.array([1, 2])) == 0.5


def test_the_point_value_is_the_agreement_and_lies_in_its_interval():
    rng = np.random.default_rng(0)
    less, more, groups, severity = _votes(rng)
    scores = np.stack([_scores(rng, severity, s) for s in (0.3, 1.0, 3.0)])
    iv = bootstrap_agreement(scores, less, more, groups)
    assert iv.value.tolist() == [agreement(s, less, more) for s in scores]
    assert np.all(iv.low <= iv.value) and np.all(iv.value <= iv.high) and np.all(iv.low < iv.high)
    assert (iv.unit, iv.units) == ("group", 200)


def test_seeded_and_the_same_for_the_same_trial_in_any_company():
    rng = np.random.default_rng(1)
    less, more, groups, severity = _votes(rng)
    scores = np.stack([_scores(rng, severity, s) for s in (0.5, 0.6, 2.0)])
    a, b = bootstrap_agreement(scores, less, more, groups), bootstrap_agreement(scores, less, more, groups)
    assert a.low.tolist() == b.low.tolist() and a.p_ge_best.tolist() == b.p_ge_best.tolist()
    alone = bootstrap_agreement(scores[:1], less, more, groups)
    assert (alone.low[0], alone.high[0]) == (a.low[0], a.high[0])  # the resamples do not depend on the trials
    other = bootstrap_agreement(scores, less, more, groups, seed=1)
    assert other.low.tolist() != a.low.tolist()


def test_grouped_interval_resists_duplicated_groups_and_the_naive_one_does_not():
    """Every group's votes repeated 10 times: no new information, so an honest interval keeps its width;
    resampling votes as if independent (each vote its own group) makes it about sqrt(10) times narrower."""
    rng = np.random.default_rng(2)
    less, more, groups, severity = _votes(rng, n_groups=150)
    scores = _scores(rng, severity, 1.0)[None]
    base = bootstrap_agreement(scores, less, more, groups, resamples=400)
    rep = 10
    less10, more10, groups10 = np.repeat(less, rep), np.repeat(more, rep), np.repeat(groups, rep)
    grouped = bootstrap_agreement(scores, less10, more10, groups10, resamples=400)
    naive = bootstrap_agreement(scores, less10, more10, np.arange(len(less10)), resamples=400)
    width = {k: float(v.high[0] - v.low[0]) for k, v in (("base", base), ("grouped", grouped), ("naive", naive))}
    assert grouped.value[0] == base.value[0]
    assert width["grouped"] == pytest.approx(width["base"], rel=0.25), width
    assert width["naive"] < 0.5 * width["grouped"], width


def test_without_groups_texts_are_resampled_with_all_their_votes():
    """No group column: each resample draws texts, and a vote counts as often as both its texts were drawn
    (Owen's pigeonhole bootstrap). Votes repeated between the same texts add nothing, so the width holds."""
    rng = np.random.default_rng(3)
    less, more, _, severity = _votes(rng, n_texts=200, n_groups=150)
    scores = _scores(rng, severity, 1.0)[None]
    base = bootstrap_agreement(scores, less, more, resamples=400)
    rep = 10
    repeated = bootstrap_agreement(scores, np.repeat(less, rep), np.repeat(more, rep), resamples=400)
    naive = bootstrap_agreement(scores, np.repeat(less, rep), np.repeat(more, rep), np.arange(len(less) * rep),
                                resamples=400)
    assert (base.unit, base.units) == ("text", len(np.unique(np.concatenate([less, more]))))
    w_base, w_rep, w_naive = (float(v.high[0] - v.low[0]) for v in (base, repeated, naive))
    assert w_rep == pytest.approx(w_base, rel=0.25) and w_naive < 0.5 * w_rep
    # Texts shared by many votes make votes dependent: texts are no narrower than independent votes.
    independent = bootstrap_agreement(scores, less, more, np.arange(len(less)))
    assert w_base > float(independent.high[0] - independent.low[0])


def test_paired_comparison_with_the_best():
    rng = np.random.default_rng(4)
    less, more, groups, severity = _votes(rng, n_groups=300)
    good = _scores(rng, severity, 0.5)
    near = good + np.float32(0.02) * rng.normal(size=len(good)).astype(np.float32)  # nearly the same model
    bad = _scores(rng, severity, 3.0)
    iv = bootstrap_agreement(np.stack([near, good, bad, good]), less, more, groups)
    assert iv.best == int(np.argmax(iv.value))
    assert iv.p_ge_best[iv.best] == 1.0 and iv.tied[iv.best]
    assert iv.p_ge_best[2] < 0.01 and not iv.tied[2]  # far worse: never close to the best
    assert iv.tied[0] and iv.tied[1] and iv.tied[3]  # tiny differences, and an identical copy
    assert iv.tied_with_best() == sorted({0, 1, 3} - {iv.best})
    # The paired comparison sees what two separate intervals cannot: `near` against `good` on the same
    # resamples varies far less than either's own interval.
    assert 0.0 < iv.p_ge_best[0] < 1.0 or iv.value[0] == iv.value[1]


def test_a_chosen_best_and_missing_trials():
    rng = np.random.default_rng(5)
    less, more, groups, severity = _votes(rng)
    a, b = _scores(rng, severity, 0.5), _scores(rng, severity, 0.6)
    iv = bootstrap_agreement(np.stack([a, b]), less, more, groups, best=1)
    assert iv.best == 1 and iv.p_ge_best[1] == 1.0
    with pytest.raises(ValueError, match="no votes"):
        bootstrap_agreement(np.stack([a]), less[:0], more[:0])


def test_a_run_keeps_its_validation_votes_and_each_best_validation_its_scores(tmp_path):
    """The run layout's two files (search/runs/layout.py): the fold's validation votes, once per run, and
    a trial's scores in each checkpoint of a new best validation; the trial's newest such checkpoint is
    its best."""
    from search.runs.layout import VAL_SCORES, best_scores, read_validation, write_val_scores, write_validation

    less, more, groups = np.array([0, 2, 1]), np.array([1, 0, 2]), np.array([5, 5, 9])
    write_validation(tmp_path, less, more, groups)
    got = read_validation(tmp_path)
    assert [a.tolist() for a in got] == [less.tolist(), more.tolist(), groups.tolist()]
    write_validation(tmp_path / "plain", less, more, None)
    assert read_validation(tmp_path / "plain")[2] is None
    assert read_validation(tmp_path / "none") is None  # a run from before runs kept them

    trial = tmp_path / "abc123"
    assert best_scores(trial) is None
    write_val_scores(trial / "checkpoint_000001", np.array([0.1, 0.2, 0.3]))
    write_val_scores(trial / "checkpoint_000004", np.array([0.3, 0.2, 0.1]))
    (trial / "checkpoint_000010").mkdir()  # a resume-only checkpoint: not a best validation
    assert (trial / "checkpoint_000004" / VAL_SCORES).stat().st_size < 200  # float32, small
    assert best_scores(trial).tolist() == pytest.approx([0.3, 0.2, 0.1])
    assert best_scores(trial).dtype == np.float32


def test_a_trial_keeps_the_scores_of_each_new_best_validation(tmp_path):
    """fill_checkpoint, which the one-process trial and every data-parallel worker share: the scores go
    with the model of a new best validation, written by rank 0 only."""
    import torch

    from model.train import ValidationResult
    from search.runs.layout import VAL_SCORES
    from search.tune.trial import fill_checkpoint

    module = torch.nn.Linear(2, 1)
    module.trainer = type("T", (), {"save_checkpoint": lambda self, path: open(path, "w").close()})()
    scores = np.array([0.5, -1.0, 2.0], dtype=np.float32)

    def result(is_best, final=True):
        return ValidationResult(0.7, 0.3, 1.0, 10, is_best, 0.7, final, 1.0, scores=scores)

    for name, r, rank0 in (("best", result(True), True), ("worse", result(False, final=False), True),
                           ("other_rank", result(True), False)):
        (tmp_path / name).mkdir()
        fill_checkpoint(str(tmp_path / name), r, module, {}, {}, rank0)
    assert np.load(tmp_path / "best" / VAL_SCORES).tolist() == scores.tolist()
    assert not (tmp_path / "worse" / VAL_SCORES).exists() and not (tmp_path / "other_rank" / VAL_SCORES).exists()


def test_the_tied_line_says_so_when_no_other_trial_is_tied():
    from search.runs.intervals import tied_line

    info = {"best_trial": "abc", "level": 0.95, "units": 5, "resampled": "group"}
    assert tied_line({**info, "tied_with_best": []}).startswith("no other trial is tied with the best (abc) at 95%")
    assert tied_line({**info, "tied_with_best": ["x"]}).startswith("1 trial is tied with the best (abc) at 95%")
    assert tied_line({**info, "tied_with_best": ["x", "y"]}).endswith("): x, y")
