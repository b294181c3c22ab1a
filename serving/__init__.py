"""Serving: the BentoML service and what it is built from.

- ``service``: the ``@bentoml.service`` with its endpoints (/recommend, /interest, /audience, /churn_risk, /events,
  /deployment, /readyz); ``bentofile.yaml`` packages it.
- ``schemas``: the typed requests and answers (the OpenAPI spec); ``explain``: which items may be shown and why
  each is recommended; ``queries``: the audience SQL.
- ``deployment``: the loaded recommender and the champion follower (zero-downtime swaps); ``release``: the
  pipeline's build_bento and deploy steps;
  ``middleware``: bearer-token auth, JSON-body checks, access log and tracing settings.
"""
