"""Evaluation: inference, metrics with speaker-bootstrap intervals, evaluate, predict, audit, compare, plots."""
