"""Evaluation: inference, metrics with speaker-level intervals (over seeds too), evaluate, audit, compare, plots,
the model card.

Module order (each imports only those above it): confusion, groups, inference, plots -> intervals -> metrics ->
regression -> audit_dimensional -> audit -> compare, modelcard; evaluate and dimensional score runs (prediction
is :mod:`emoshift.deploy`)."""
