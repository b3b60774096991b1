"""Framed, sealed connections over streams (trio) and sockets (blocking)."""
