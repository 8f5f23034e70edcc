"""The trainable ranker: encoder + scoring head, pairwise losses, agreement, training loop."""
