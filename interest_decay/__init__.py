"""Shared core of the interest-decay platform.

What the DAGs, the models, the feature repo and the service all need, and nothing else:
the event contract (`schema`), the decay functions (`decay`), settings from the
environment (`config`), loading events into PostgreSQL (`ingest`), converters for the
real datasets (`adapters`) and the synthetic generator with known half-lives (`synthetic`).
"""
