"""The synthetic corpus generator (RAVDESS and CREMA-D layouts)."""
