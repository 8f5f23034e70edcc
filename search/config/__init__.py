"""The YAML config: what a search, a trial and a final model are told to do, checked before anything runs.

    parse.py     PairtuneConfig: the four typed sections (data, model, train, search), parse_config,
                 the checks across sections, with_params (a trial's config)
    load.py      load_config: a YAML file, --set overrides, paths relative to the file
    schema.py    checking YAML values against the sections' typed fields
    space.py     search.space: distributions, fixed values, every value a trial can get
    tracking.py  search.tracking: the trackers a search reports to and their keys

May import: model/ and data/ (their config dataclasses and metric names), never tune/, runs/,
recipes/ or cli/. Imports neither torch, Ray nor Lightning.
"""
