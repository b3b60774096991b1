"""Clients of the server: a blocking one for the CLI, an anyio one for the Python API."""
