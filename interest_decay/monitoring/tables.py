"""The PostgreSQL schema ``monitoring``: drift summaries, quality summaries, served predictions."""


def create_table(conn_or_cursor, ddl: str) -> None:
    """Run ``ddl`` (``create ... if not exists``) under one advisory lock shared by every monitoring table,
    so that concurrent first writers do not race on the catalog. Call it inside a transaction: the lock
    holds until that transaction ends."""
    conn_or_cursor.execute("select pg_advisory_xact_lock(hashtext('interest_decay.monitoring_ddl'))")
    conn_or_cursor.execute(ddl)
