"""Fast bulk inserts: COPY on PostgreSQL, executemany on SQLite.

The ORM costs about ten times more per row than these paths; imports of a million
annotations go through here. Values must already be plain Python (JSON columns as text).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

CHUNK = 50_000


def bulk_insert(
    conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence]
) -> int:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table``; return how many.

    Runs inside the connection's current transaction, so a later failure rolls it back.
    """
    cols = ", ".join(columns)
    n = 0
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection  # psycopg.Connection
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        return n
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
    cur = conn.connection.driver_connection.cursor()
    try:
        batch: list[Sequence] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= CHUNK:
                cur.executemany(sql, batch)
                n += len(batch)
                batch.clear()
        if batch:
            cur.executemany(sql, batch)
            n += len(batch)
    finally:
        cur.close()
    return n
