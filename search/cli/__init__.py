"""The `pairtune` command line.

    main.py      the parser (a table of subcommands), main(), how user errors are printed
    submit.py    `pairtune submit`: a search as a Ray job on a cluster (Jobs API)

May import anything in search/. Each command imports what it needs when it runs, so `--help` and
reading a run import neither torch, Ray nor Lightning.
"""
