"""Output streaming (`--stream`): the file format, the worker-side writer, the reader."""
