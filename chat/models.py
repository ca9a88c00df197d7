"""Models of the chat app (see its issue)."""
