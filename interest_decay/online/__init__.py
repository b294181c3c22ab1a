"""Online: the feature store's side of the platform.

- ``realtime``: live events (``/events``, ``make push``) checked as staging does, stored as a raw load and folded
  into the online rows with the exact decay update;
- ``materialization``: the marts written into Feast in bounded chunks, with the live events since ``as_of``
  folded back in (the DAG's ``feast_materialize``).
"""
