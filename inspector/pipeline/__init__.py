"""Acquisition -> bounded queue -> inference -> decision -> sinks, under a per-item deadline."""
