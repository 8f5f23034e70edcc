"""Search: the YAML config, the Ray Tune search, export and the `pairtune` CLI."""

import time as _time

LOADED_AT = _time.perf_counter()
"""When this package was first imported in this process. In a trial process that is just before
search.tune.trial imports torch, transformers and Lightning, so a trial can report its start-up with them."""
