"""emoshift: cross-corpus speech emotion recognition, honestly measured."""

__version__ = "0.1.0"
