"""The YAML config: what a search, a trial and a final model are told to do, checked before anything runs.

    parse.py     PairtuneConfig: the four typed sections (data, model, train, search), parse_config,
                 the checks across sections, load_config (YAML file, --set overrides, relative paths)
    schema.py    checking YAML values against the sections' typed fields
    space.py     search.space: distributions, fixed values, every value a trial can get
    tracking.py  search.tracking: the trackers a search reports to and their keys

May import: model/ and data/ (their config dataclasses and metric names), never tune/, runs/,
recipes/ or cli/. Imports neither torch, Ray nor Lightning.
"""
