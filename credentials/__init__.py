"""labdeck credentials: the broker service, its providers, and the in-server client."""
