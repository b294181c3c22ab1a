"""Events: the contract and how events get in.

- ``schema``: the event schema (columns, event types, the checks every row passes or is rejected with a reason);
- ``ingest``: loading event files into PostgreSQL (``raw.events``, one load per file, idempotent);
- ``adapters``: converters from the real datasets (Online Retail, Taobao) to the schema;
- ``synthetic``: the generator with known half-lives (``make demo``, the known-answer tests);
- ``pseudonym``: the keyed pseudonyms of user ids (the same as dbt staging's).
"""
