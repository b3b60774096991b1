"""The server: a trio shell around the pure core."""
