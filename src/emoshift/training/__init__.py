"""Training: ``train(cfg, run_dir)`` and what it is made of.

Inside the package, each module imports only those above it in this list::

    distill, tracking, tune_space   teacher logits; the tracking backends; the search space (no torch)
    pipeline                        the steps (scan, split, prepare, fit, save, evaluate) and one run
    folds                           speaker cross-validation: every fold a run, pooled
    train, tune                     ``train()``: one run or the folds; ``emoshift tune``: trials up to fit

The LightningModule and the Lightning fit are still in :mod:`emoshift.models` (``module``, ``lightning``).
"""
