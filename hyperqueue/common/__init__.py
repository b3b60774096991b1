"""Small pure helpers shared by the CLI, client, server and worker (stdlib only, no I/O)."""
