"""Pure core: no I/O, no clock, no event loop."""
