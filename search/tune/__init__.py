"""The search itself: Ray Tune with Optuna's TPE and ASHA, running the Lightning trainable per trial.

    tuner.py      run_search / resume_search (and extend): the Tuner, the run directory, starting Ray
    trial.py      the trainable of one trial: its config, data and model, reporting to Tune
    placement.py  where a trial runs: node, GPUs, device and precision (a declared GPU CUDA cannot see: CPU)
    ddp.py        a trial as a data-parallel Ray Train run over several GPUs
    prepare.py    a config's data preparation: the Encodings its space allows (data/prepare.py does it)
    searcher.py   Optuna's TPE (or random), told the truth about trials ASHA stopped; its study in the run
    scheduler.py  ASHA and its rungs (replayed on resume); the trials it stops, recorded
    budget.py     the stopper: time, target, epoch budget
    callbacks.py  pruning each finished trial to its best checkpoint
    metrics.py    each trial's latest and best value and epochs as Ray metrics (Prometheus)
    cluster.py    the Ray address, named trainables
    tracking.py   W&B and MLflow callbacks, and their environment checks
    interrupt.py  SIGINT / SIGTERM: stop, save, say how to resume
    preflight.py  every check made before a search starts; the dry run of `pairtune check`
    baseline.py   the TF-IDF + ridge floor fitted before a search, written into the run

May import: config/, runs/ (a search writes a run), model/, data/; never recipes/ or cli/.
"""
