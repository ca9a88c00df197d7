"""Models of the documents app (see its issue)."""
