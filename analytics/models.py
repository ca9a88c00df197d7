"""Models of the analytics app (see its issue)."""
