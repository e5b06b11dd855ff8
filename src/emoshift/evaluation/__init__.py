"""Evaluation: inference, metrics with speaker-bootstrap intervals, evaluate, audit, compare, plots, the model card.

Module order (each imports only those above it): groups, inference, metrics, plots -> regression ->
audit_dimensional -> audit -> compare, modelcard; evaluate and dimensional score runs (prediction is
:mod:`emoshift.deploy`)."""
