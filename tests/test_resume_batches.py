"""A retried or resumed trial is a true continuation: it trains exactly the batches the uninterrupted
run would have, in the same order, and ends with the same validation loss (dropout off, so the only
randomness is the batch order)."""

import json
import shutil

import pytest

from data import make_fold, read_pairs, subsample_votes, tokenize_texts
from data.loaders import FoldInputs, _VoteCollate
from model.backbone import load_tokenizer
from model.config import ModelConfig, TrainConfig
from model.train import fit, save_resume_state


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_backbone, ruddit_pairs):
    backbone = tmp_path_factory.mktemp("nodrop") / "tiny"
    shutil.copytree(tiny_backbone, backbone)
    encoder = json.loads((backbone / "config.json").read_text())
    encoder.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (backbone / "config.json").write_text(json.dumps(encoder))
    votes = subsample_votes(read_pairs(ruddit_pairs), 600, seed=0)
    split = make_fold(votes, 4, 0, seed=0)
    tokens = tokenize_texts(votes.texts, load_tokenizer(str(backbone)), max_length=48)
    t, v = split.train_votes, split.val_votes
    return ModelConfig(backbone=str(backbone), dropout=0.0), FoldInputs(tokens, votes.less[t], votes.more[t], votes.less[v], votes.more[v])


class Interrupted(Exception):
    pass


# A validation inside epoch 1 with length-grouped batches, and the one at its end with plain shuffling.
@pytest.mark.parametrize("stop_at,length_grouping", [(2, True), (4, False)])
def test_resumed_run_draws_the_same_batches_and_ends_the_same(setup, tmp_path, monkeypatch, stop_at, length_grouping):
    model_cfg, data = setup
    cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=32, val_every_n_steps=4, seed=3, length_grouping=length_grouping)
    drawn: list[tuple] = []
    collate = _VoteCollate.__call__
    monkeypatch.setattr(_VoteCollate, "__call__", lambda self, votes: (drawn.append(tuple(votes)), collate(self, votes))[1])

    whole = []
    fit(model_cfg, cfg, data, 48, lambda r, m: whole.append(r))
    batches_whole, drawn[:] = list(drawn), []

    state = tmp_path / "resume.ckpt"

    def stop(r, module):
        if len(seen) == stop_at - 1:
            save_resume_state(module, str(state))
            raise Interrupted
        seen.append(r)

    seen = []
    with pytest.raises(Interrupted):
        fit(model_cfg, cfg, data, 48, stop)
    drawn[:] = []
    resumed = []
    fit(model_cfg, cfg, data, 48, lambda r, m: resumed.append(r), resume_from=str(state))

    trained_before = whole[stop_at - 1].step  # optimizer steps = batches (no accumulation)
    assert 0 < trained_before < len(batches_whole)
    assert drawn == batches_whole[trained_before:]
    assert [r.step for r in resumed] == [r.step for r in whole[stop_at:]]
    assert [r.val_loss for r in resumed] == pytest.approx([r.val_loss for r in whole[stop_at:]], abs=1e-6)
    assert resumed[-1].val_loss == pytest.approx(whole[-1].val_loss, abs=1e-6)
