"""The search itself: Ray Tune with Optuna's TPE and ASHA, running the Lightning trainable per trial.

    tuner.py      run_search / resume_search: preflight, the Tuner, what a finished search prints
    trial.py      the trainable of one trial: its config, data and model, reporting to Tune
    ddp.py        a trial as a data-parallel Ray Train run over several GPUs
    prepare.py    a config's data preparation: the Encodings its space allows (data/prepare.py does it)
    searcher.py   what Optuna's TPE is told about trials ASHA stopped
    budget.py     the stoppers: time, target, epoch budget
    cluster.py    the Ray address, named trainables
    tracking.py   W&B and MLflow callbacks, and their environment checks
    interrupt.py  SIGINT / SIGTERM: stop, save, say how to resume
    check.py      `pairtune check`: everything a search checks, without starting it
    baseline.py   the TF-IDF + ridge floor fitted before a search, written into the run

May import: config/, runs/ (a search writes a run), model/, data/; never recipes/ or cli/.
"""
