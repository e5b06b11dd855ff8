"""`emoshift serve`: registered below once the app exists."""
