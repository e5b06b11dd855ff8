"""``python -m emoshift`` runs the CLI."""

from emoshift.cli import main

main()
