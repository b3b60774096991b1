"""Pure byte-in / byte-out wire modules shared by the server, workers and clients."""
