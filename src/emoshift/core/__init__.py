"""Core: errors, atomic I/O, progress, config overrides, audio decoding and the run-directory contract (torch-free)."""
