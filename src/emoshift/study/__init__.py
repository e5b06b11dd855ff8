"""The study: its spec (phases as config overlays), the runner, and the report."""
