"""Models of the audio app (see its issue)."""
