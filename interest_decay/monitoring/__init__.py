"""Monitoring: what watches the data and the served model, kept in PostgreSQL schema ``monitoring``.

- ``drift``: Evidently drift reports of the interest features (the gate of retraining and deployment);
- ``prediction_log``: what the server answered, written in the background for prediction drift;
- ``recsys_quality``: Evidently's ranking metrics of a run's test lists;
- ``tables``: the shared DDL lock of the schema's tables.
"""
