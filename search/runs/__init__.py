"""A run directory: where it lives and what is in it, for the code that writes it and the code that reads it.

    layout.py    file names (CONFIG_FILE, SUMMARY, ...), EPOCH, run_dir, load_run_config
    storage.py   local paths and s3:// / gs:// URIs alike; claiming a run; checkpoint pruning
    study.py     the Optuna study kept in the run as a journal file (optuna-dashboard reads it)
    results.py   the one reader of trials' result.json records
    intervals.py each trial's 95% interval and its paired comparison with the best (leaderboard columns)
    export.py    best.yaml, leaderboard and summary of a finished (or running) search
    status.py    `pairtune status`: the live leaderboard
    report.py    `pairtune report`: curves, best so far, importances, ASHA's stops, index.html
    plots.py     its PNG plots
    dashboard.py `pairtune dashboard`: optuna-dashboard over the study, on 127.0.0.1

May import: config/, model/ (metric names), data/; never tune/, recipes/ or cli/. Reading a
finished run imports neither torch, Ray nor Lightning (export's best checkpoint asks Ray lazily).
"""
