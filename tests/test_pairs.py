"""Reading pair-vote CSVs: the real layout, column mapping, and clear errors for bad files."""

import numpy as np
import pytest

from data import DataError, read_pairs, subsample_votes
from data.pairs import DEMO_PAIRS


def write(tmp_path, text, name="votes.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_reads_real_ruddit_votes(ruddit_pairs):
    votes = read_pairs(ruddit_pairs)
    assert votes.n_votes == 30445 and len(votes.texts) == 4561  # as SOURCES.md documents
    assert votes.less.max() < len(votes.texts) and votes.more.max() < len(votes.texts)
    # Text round trip: each vote points back at its own texts.
    import pandas as pd

    frame = pd.read_csv(ruddit_pairs, dtype=str, keep_default_na=False)
    for i in (0, 123, 30444):
        assert votes.texts[votes.less[i]] == frame.less_toxic[i]
        assert votes.texts[votes.more[i]] == frame.more_toxic[i]


def test_demo_data_ships_with_the_package():
    votes = read_pairs("demo")
    assert votes.source == str(DEMO_PAIRS) and votes.n_votes == 5000 and len(votes.texts) == 1162


def test_demo_data_is_its_generator_output(tmp_path):
    from data.demo import generate

    assert generate.main(tmp_path / "demo.csv").read_bytes() == DEMO_PAIRS.read_bytes()


def test_demo_folds_split_whole_vocabularies():
    """What makes the demo reward a pretrained encoder: leak-free folds put each synonym set on one
    side, so no validation text uses a harsh word that a training text contains."""
    from data.demo import generate
    from data.folds import make_fold

    texts, severity, vocab, rows = generate.build()
    of_text = dict(zip(texts, vocab))
    votes = read_pairs("demo")
    split = make_fold(votes, 4, 0, seed=42)
    assert split.method == "components" and split.dropped_votes == 0
    sides = [set(), set()]
    for side, rows_ in ((0, split.train_votes), (1, split.val_votes)):
        for i in rows_:
            sides[side] |= {of_text[votes.texts[votes.less[i]]], of_text[votes.texts[votes.more[i]]]}
    assert not sides[0] & sides[1] and len(sides[1]) == 2
    assert 0.85 < generate.ceiling(severity, rows) < 0.9  # the hidden severities' agreement: room above the models


def test_column_mapping_and_bom(tmp_path):
    path = write(tmp_path, "\ufeffa,b,extra\nlow,high,1\nlow,higher,2\n")
    votes = read_pairs(path, less_column="a", more_column="b")
    assert votes.texts == ["low", "high", "higher"]
    assert votes.less.tolist() == [0, 0] and votes.more.tolist() == [1, 2]


def test_texts_like_na_stay_texts(tmp_path):
    votes = read_pairs(write(tmp_path, "less_toxic,more_toxic\nNA,null\n"))
    assert votes.texts == ["NA", "null"]


def test_identical_rows_are_dropped_and_counted(tmp_path):
    votes = read_pairs(write(tmp_path, "less_toxic,more_toxic\na,b\nc,c\nb,c\n"))
    assert votes.n_votes == 2 and votes.identical_dropped == 1


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "file is empty"),
        ("less_toxic,more_toxic\n", "header only"),
        ("less_toxic,more\na,b\n", "missing column 'more_toxic'.*did you mean 'more'"),
        ("less_toxic;more_toxic\na;b\n", "delimiter"),
        ("less_toxic,more_toxic\na,b\n,c\n", "row 3: empty text in column 'less_toxic'"),
        ("less_toxic,more_toxic\na,a\n", "same text on both sides"),
        (b"less_toxic,more_toxic\na,\xff\xfe\n", "not valid UTF-8"),
    ],
)
def test_bad_files_get_one_clear_line(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(DataError, match=message) as err:
        read_pairs(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_pairs(tmp_path / "nope.csv")


def test_subsample_is_seeded_and_reindexes_texts():
    votes = read_pairs("demo")
    a, b = subsample_votes(votes, 100, seed=3), subsample_votes(votes, 100, seed=3)
    assert a.n_votes == 100 and np.array_equal(a.less, b.less)
    used = set(a.less.tolist()) | set(a.more.tolist())
    assert used == set(range(len(a.texts)))
    for i in range(5):  # same texts as before the subsample
        assert a.texts[a.less[i]] in votes.texts


def test_the_worker_column_groups_votes(tmp_path, ruddit_pairs):
    """A `worker` column (Jigsaw's annotator, Ruddit's 4-text tuple) is each vote's annotation group: the
    unit the validation bootstrap resamples. Dropped rows and subsets keep each vote's own group."""
    import pandas as pd

    votes = read_pairs(ruddit_pairs)
    frame = pd.read_csv(ruddit_pairs, dtype=str, keep_default_na=False)
    assert votes.groups is not None and len(votes.groups) == votes.n_votes
    assert len(np.unique(votes.groups)) == frame.worker.nunique()
    same = frame.worker.to_numpy()
    for i, j in ((0, 1), (0, 5), (100, 101), (30443, 30444)):
        assert (votes.groups[i] == votes.groups[j]) == (same[i] == same[j])
    path = write(tmp_path, "worker,less_toxic,more_toxic\n7,a,b\n7,a,a\n8,b,c\n7,c,d\n")
    small = read_pairs(path)
    assert small.groups.tolist()[0] == small.groups.tolist()[2] != small.groups.tolist()[1]  # the identical row dropped
    sub = subsample_votes(votes, 500, seed=3)
    assert sub.groups is not None and len(sub.groups) == 500
    assert read_pairs(write(tmp_path, "less_toxic,more_toxic\na,b\nb,c\n", "plain.csv")).groups is None


def test_validation_votes_are_positions_among_the_scored_texts(tiny_backbone):
    """What a run keeps of its fold to judge trials' scores with: each validation vote's two texts as
    positions among the validation texts, in the order a trial scores them (FoldInputs.val_texts)."""
    from search.config.parse import parse_config
    from search.tune.prepare import prepare_data

    cfg = parse_config({"data": {"pairs": "demo", "folds": 4, "max_votes": 800, "max_length": 16},
                        "model": {"backbone": tiny_backbone}}, "t.yaml")
    prepared = prepare_data(cfg)
    less, more, groups = prepared.validation_votes()
    texts, fold_less, fold_more = prepared.fold_inputs(tiny_backbone, False).val_texts()
    assert less.tolist() == fold_less.tolist() and more.tolist() == fold_more.tolist()
    assert max(less.max(), more.max()) == len(texts) - 1
    assert groups.tolist() == prepared.votes.groups[prepared.split.val_votes].tolist()
