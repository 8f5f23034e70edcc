"""The `pairtune` command line.

    main.py       the parser (a table of the groups' subcommands), main(), which errors are the user's
    searching.py  search, resume, check
    models.py     train, predict, baseline, lr-find
    reading.py    export, report, status
    cluster.py    submit; submit.py is its Jobs API client
    common.py     the config and --address arguments, printing user errors

May import anything in search/. Each command imports what it needs when it runs, so `--help` and
reading a run import neither torch, Ray nor Lightning.
"""
