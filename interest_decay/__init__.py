"""Shared core of the interest-decay platform: what the DAGs, the models, the feature repo and the service all
need, by purpose (each sub-package's docstring lists its modules):

- ``config``: every setting, read from the environment in one typed place;
- ``events``: the event contract, ingest, dataset adapters, the synthetic generator, pseudonyms;
- ``decay``: the decay families and the Python reference of the marts;
- ``online``: live events and the feature store's materialization;
- ``monitoring``: drift, the prediction log, recommendation quality.

Dependencies flow one way: dags → serving → models → interest_decay, never back.
"""
