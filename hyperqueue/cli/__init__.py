"""The `hq` command line (rich-click), thin over the client library."""
