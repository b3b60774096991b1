"""The hq worker: connection to the server, task execution and hardware detection."""
