"""Models of the providers app (see its issue)."""
