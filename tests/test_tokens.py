import numpy as np
import pandas as pd
import pytest

from data import tokenize_texts
from model.backbone import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def real_texts(ruddit_pairs):
    frame = pd.read_csv(ruddit_pairs, dtype=str, keep_default_na=False, nrows=400)
    return list(dict.fromkeys(frame.less_toxic.tolist() + frame.more_toxic.tolist()))[:200]


@pytest.mark.parametrize("max_length", [16, 48, 128])
def test_truncating_stored_ids_equals_tokenizer_truncation(tokenizer, real_texts, max_length):
    stored = tokenize_texts(real_texts, tokenizer, max_length=128)
    idx = np.arange(len(real_texts))
    input_ids, mask = stored.batch(idx, max_length)
    direct = tokenizer(real_texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    width = direct["input_ids"].shape[1]
    assert input_ids.shape == (len(real_texts), width)  # padded to the longest text, not max_length
    assert (input_ids == direct["input_ids"]).all()
    assert (mask == direct["attention_mask"]).all()


def test_lowercase_and_lengths(tokenizer):
    stored = tokenize_texts(["Hello THERE", "b"], tokenizer, max_length=32, lowercase=True)
    assert stored.lengths.tolist() == [4, 3]  # [CLS] hello there [SEP], [CLS] b [SEP]
    ids, _ = stored.batch(np.array([0]), 32)
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == "hello there"


def test_asking_beyond_the_tokenised_length_fails(tokenizer):
    stored = tokenize_texts(["a b c"], tokenizer, max_length=16)
    with pytest.raises(ValueError, match="exceeds"):
        stored.batch(np.array([0]), 32)
