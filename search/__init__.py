"""Search: the config, the Ray Tune search, the run directory, single-model recipes and the CLI.

    config/   the YAML config and search space          (imports model/, data/)
    tune/     the search: Ray Tune + Optuna + ASHA       (imports config/, runs/, model/, data/)
    runs/     a run directory: layout, storage, reading  (imports config/, model/, data/)
    recipes/  train, predict, lr-find                    (imports tune/, runs/, config/, ...)
    cli/      the `pairtune` command line                (imports any of them)

tests/test_imports.py enforces these rules and finds import cycles.
"""

import time as _time

LOADED_AT = _time.perf_counter()
"""When this package was first imported in this process. In a trial process that is just before
search.tune.trial imports torch, transformers and Lightning, so a trial can report its start-up with them."""
