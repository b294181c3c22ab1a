"""Online: the feature store's side of the platform.

- ``realtime``: live events from ``/events`` folded into the online rows with the exact decay update, and the
  batch materialization of the marts into Feast (``materialize``, ``materialize_and_replay``).
"""
