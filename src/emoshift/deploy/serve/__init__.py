"""`emoshift serve`: a FastAPI app (:mod:`.app`), its upload reader (:mod:`.uploads`) and the page (static/)."""
