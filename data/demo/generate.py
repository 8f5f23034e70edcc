"""Generate the demo pair votes shipped with pairtune (`data.pairs: demo`).

Deterministic: `python -m data.demo.generate` rewrites `data/demo/demo_pairs.csv` byte for byte.
Each text is a short comment built from a template and a few words of known harshness; its hidden
severity is the sum of those weights. Simulated annotators see 4-text tuples (as in Ruddit's
best-worst scaling) and vote noisily: a pair's order follows the severities with logistic noise, so
the votes repeat, conflict, and a perfect scorer agrees with roughly 85-90% of them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("demo_pairs.csv")

WORDS = {  # harshness weight -> words
    0.0: ["thanks", "interesting", "fair point", "good question", "nice work", "I agree"],
    1.0: ["silly", "annoying", "lazy", "confused", "boring", "sloppy"],
    2.0: ["stupid", "clueless", "pathetic", "ridiculous", "incompetent", "dishonest"],
    3.0: ["disgusting", "worthless", "a total idiot", "a complete moron", "garbage", "vile"],
}
TEMPLATES = [
    "this edit is {0}",
    "honestly your comment is {0} and {1}",
    "the article looks {0}, {1}",
    "{0}. you are {1}",
    "why would anyone write this, it is {0}",
    "{0}, the sources here are {1} and {2}",
    "reverted again: {0} and {1}",
    "the talk page is {0}",
]


def make_texts(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    levels = sorted(WORDS)
    texts, severity = [], []
    seen = set()
    while len(texts) < n:
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        slots = template.count("{")
        picked = rng.choice(levels, size=slots, p=[0.35, 0.3, 0.2, 0.15])
        words = [WORDS[lv][rng.integers(len(WORDS[lv]))] for lv in picked]
        text = template.format(*words)
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        severity.append(float(np.sum(picked)) + 0.3 * rng.normal())
    return texts, np.array(severity)


def make_votes(rng, severity: np.ndarray, n_tuples: int) -> list[tuple[int, int, int]]:
    """Best-worst tuples of 4: the harshest beats the other three, the mildest loses to the middle two."""
    votes = []
    for worker in range(n_tuples):
        tup = rng.choice(len(severity), size=4, replace=False)
        seen = severity[tup] + 0.8 * rng.logistic(size=4)  # what this annotator perceived
        order = tup[np.argsort(seen)]  # mildest first
        lo, mid1, mid2, hi = order.tolist()
        votes += [(worker, lo, hi), (worker, mid1, hi), (worker, mid2, hi), (worker, lo, mid1), (worker, lo, mid2)]
    return votes


def main(n_texts: int = 900, n_tuples: int = 900, seed: int = 20261121) -> Path:
    rng = np.random.default_rng(seed)
    texts, severity = make_texts(rng, n_texts)
    votes = make_votes(rng, severity, n_tuples)
    with OUT.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["worker", "less_toxic", "more_toxic"])
        for worker, less, more in votes:
            writer.writerow([worker, texts[less], texts[more]])
    return OUT


if __name__ == "__main__":
    print(main())
