"""Generate the demo pair votes shipped with pairtune (`data.pairs: demo`).

Deterministic: `python -m data.demo.generate` rewrites `data/demo/demo_pairs.csv` byte for byte.

The demo is built so that what a pretrained encoder knows matters and n-grams of the training texts
cannot carry over to validation texts:

- Synonyms split across folds. The vocabulary is cut into VOCABULARIES: eight disjoint sets of
  adjectives, each with words at four levels of harshness (polite, mild, insulting, vile) and no
  stem shared with another set ("sloppy" in one, "clumsy" in another). Every text uses the words of
  one set, and every 4-text tuple the annotators see is drawn from one set, so the vote graph falls
  into one connected component per set and leak-free folds (data/folds.py, split by component) put
  whole sets on one side: validation texts use harsh words the training texts never contain.
- Negation and softening. A word may be intensified ("utterly vile"), softened ("a bit clumsy"), or
  negated ("not stupid at all" is mild, "not helpful at all" is a complaint), so its weight depends
  on the words around it, not on its presence.
- Intensity from context. The same words aimed at a person ("you are ...") weigh more than aimed at
  an edit or a source ("this edit is ...").

A text's hidden severity is its harshest phrase plus a quarter of the others, plus a little noise of
its own. Simulated annotators see 4-text tuples (as in Ruddit's best-worst scaling) and vote noisily:
a pair's order follows the severities with logistic noise, so votes repeat and conflict. 1,200 texts
(150 per vocabulary), 1,000 tuples, 5 votes each: 5,000 votes over the 1,162 texts drawn into a
tuple. The hidden severities agree with 0.876 of the votes, the ceiling for any scorer (`ceiling()`
measures it); on the quickstart's fold it is 0.865, where TF-IDF + ridge reaches 0.65-0.69 and a
fine-tuned MiniLM 0.77-0.79 (trained on the quickstart's 960 training votes or all 1,277).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("demo_pairs.csv")

# VOCABULARIES[v][level]: the words of vocabulary v at a harshness level (0 polite .. 3 vile).
# Within a level the sets are synonyms of one another; no word stem appears in two sets.
VOCABULARIES = [
    (("helpful", "insightful", "thoughtful"), ("sloppy", "lazy", "boring"),
     ("stupid", "clueless", "pathetic"), ("disgusting", "vile", "worthless")),
    (("useful", "clear", "accurate"), ("clumsy", "messy", "tedious"),
     ("dumb", "ignorant", "ridiculous"), ("repulsive", "despicable", "revolting")),
    (("excellent", "solid", "informative"), ("careless", "awkward", "dull"),
     ("idiotic", "incompetent", "laughable"), ("loathsome", "contemptible", "hateful")),
    (("brilliant", "gracious", "reasonable"), ("vague", "muddled", "shaky"),
     ("brainless", "absurd", "witless"), ("abhorrent", "vicious", "odious")),
    (("balanced", "polite", "constructive"), ("weak", "flawed", "lame"),
     ("foolish", "inept", "deceitful"), ("wretched", "sickening", "putrid")),
    (("fair", "neat", "sensible"), ("petty", "naive", "fussy"),
     ("moronic", "senseless", "hopeless"), ("filthy", "malicious", "evil")),
    (("lovely", "wonderful", "precise"), ("silly", "sluggish", "unclear"),
     ("asinine", "obtuse", "ludicrous"), ("grotesque", "nauseating", "degenerate")),
    (("superb", "tidy", "honest"), ("odd", "confused", "picky"),
     ("dimwitted", "pointless", "dishonest"), ("appalling", "trashy", "scummy")),
]
LEVELS = (0.0, 1.0, 2.0, 3.0)
LEVEL_P = (0.3, 0.25, 0.25, 0.2)
NOISE = 0.4  # scale of each annotator's logistic noise on a severity

# How the words around an adjective change its weight w: (probability, patterns, weight).
MODIFIERS = (
    (0.45, ("{}",), lambda w: w),
    (0.2, ("really {}", "extremely {}", "utterly {}", "so {}"), lambda w: 1.4 * w),
    (0.15, ("a bit {}", "slightly {}", "somewhat {}", "kind of {}"), lambda w: 0.5 * w),
    (0.2, ("not {} at all", "hardly {}", "far from {}", "not exactly {}"), lambda w: 1.2 if w == 0 else 0.15 * w),
)

# (template, weight of its phrases): aimed at a person weighs more than aimed at an edit or a source.
TEMPLATES = (
    ("this edit is {0}", 0.8),
    ("the article is {0} and {1}", 0.8),
    ("the sources are {0}", 0.8),
    ("your edit was {0}, the summary {1}", 0.8),
    ("you are {0}", 1.3),
    ("honestly, you are {0} and {1}", 1.3),
    ("you are {0}, stop editing", 1.3),
    ("your comments are {0}; you are {1}", 1.3),
)


def make_phrase(rng: np.random.Generator, words: tuple) -> tuple[str, float]:
    """One adjective with its modifier, and its weight."""
    level = rng.choice(len(LEVELS), p=LEVEL_P)
    word = words[level][rng.integers(len(words[level]))]
    _, patterns, weight = MODIFIERS[rng.choice(len(MODIFIERS), p=[m[0] for m in MODIFIERS])]
    return patterns[rng.integers(len(patterns))].format(word), weight(LEVELS[level])


def make_texts(rng: np.random.Generator, words: tuple, n: int, seen: set) -> tuple[list[str], list[float]]:
    """n distinct texts over one vocabulary, and their hidden severities."""
    texts, severity = [], []
    while len(texts) < n:
        template, target = TEMPLATES[rng.integers(len(TEMPLATES))]
        phrases = [make_phrase(rng, words) for _ in range(template.count("{"))]
        text = template.format(*(p for p, _ in phrases))
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        weights = sorted((target * w for _, w in phrases), reverse=True)
        texts.append(text)
        severity.append(weights[0] + 0.25 * sum(weights[1:]) + 0.3 * rng.normal())
    return texts, severity


def make_votes(rng: np.random.Generator, severity: np.ndarray, members: np.ndarray, n_tuples: int,
               first_worker: int) -> list[tuple[int, int, int]]:
    """Best-worst tuples of 4 texts of one vocabulary: the harshest beats the other three, the mildest
    loses to the middle two."""
    votes = []
    for worker in range(first_worker, first_worker + n_tuples):
        tup = rng.choice(members, size=4, replace=False)
        seen = severity[tup] + NOISE * rng.logistic(size=4)  # what this annotator perceived
        lo, mid1, mid2, hi = tup[np.argsort(seen)].tolist()  # mildest first
        votes += [(worker, lo, hi), (worker, mid1, hi), (worker, mid2, hi), (worker, lo, mid1), (worker, lo, mid2)]
    return votes


def build(n_texts: int = 1200, n_tuples: int = 1000, seed: int = 20261203):
    """Texts, their hidden severities, their vocabulary and the votes (worker, less, more)."""
    rng = np.random.default_rng(seed)
    per_vocab, tuples_per_vocab = n_texts // len(VOCABULARIES), n_tuples // len(VOCABULARIES)
    texts, severity, vocab, seen = [], [], [], set()
    for v, words in enumerate(VOCABULARIES):
        t, s = make_texts(rng, words, per_vocab, seen)
        texts += t
        severity += s
        vocab += [v] * len(t)
    severity, vocab = np.array(severity), np.array(vocab)
    votes = []
    for v in range(len(VOCABULARIES)):
        votes += make_votes(rng, severity, np.flatnonzero(vocab == v), tuples_per_vocab, v * tuples_per_vocab)
    order = rng.permutation(len(votes))  # the sets interleaved, as a real file would be
    return texts, severity, vocab, [votes[i] for i in order]


def ceiling(severity: np.ndarray, votes: list[tuple[int, int, int]]) -> float:
    """Share of the votes the hidden severities reproduce: the best any scorer can expect."""
    less = np.array([v[1] for v in votes])
    more = np.array([v[2] for v in votes])
    return float(np.mean(severity[more] > severity[less]))


def main(out: Path = OUT) -> Path:
    texts, _, _, votes = build()
    with Path(out).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["worker", "less_toxic", "more_toxic"])
        for worker, less, more in votes:
            writer.writerow([worker, texts[less], texts[more]])
    return Path(out)


if __name__ == "__main__":
    print(main())
