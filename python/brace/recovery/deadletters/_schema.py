"""The SQLite dead-letter file's schema: its columns, and the migrations that bring a file
written by any earlier brace to this one's version."""

from __future__ import annotations

import sqlite3

COLUMNS = ("id, operation, args, kwargs, unserialisable, error_type, error_message, category, correlation_id, "
            "attempts, created_at, served, status, resolved_at, resolved_by, note, replays")  # fmt: skip
OUTBOX_COLUMNS = ("id, operation, args, kwargs, unserialisable, correlation_id, started_at, owner_host, owner_pid, "
                   "owner_started")  # fmt: skip
# MIGRATIONS[n] takes a database from schema version n to n + 1 (PRAGMA
# user_version; a new file is at 0). Released steps never change: files written
# by every earlier brace must keep opening.
MIGRATIONS: tuple[str, ...] = (
    # 1: the letters.
    """
    CREATE TABLE IF NOT EXISTS dead_letters (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order letters were put
        id TEXT NOT NULL UNIQUE,
        operation TEXT NOT NULL,
        args TEXT NOT NULL,            -- JSON array
        kwargs TEXT NOT NULL,          -- JSON object
        unserialisable TEXT NOT NULL,  -- JSON array of paths
        error_type TEXT NOT NULL,
        error_message TEXT NOT NULL,
        category TEXT,
        correlation_id TEXT,
        attempts INTEGER NOT NULL,
        created_at REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('dead', 'delivered', 'discarded')),
        resolved_at REAL,
        resolved_by TEXT,
        note TEXT NOT NULL,
        replays INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS dead_letters_status ON dead_letters (status, seq);
    """,
    # 2: what a call was served instead of the operation's result (NULL: an error),
    # and the outbox of calls in flight.
    """
    ALTER TABLE dead_letters ADD COLUMN served TEXT;
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order calls were begun
        id TEXT NOT NULL UNIQUE,
        operation TEXT NOT NULL,
        args TEXT NOT NULL,            -- JSON array
        kwargs TEXT NOT NULL,          -- JSON object
        unserialisable TEXT NOT NULL,  -- JSON array of paths
        correlation_id TEXT,
        started_at REAL NOT NULL,
        owner_host TEXT NOT NULL,
        owner_pid INTEGER NOT NULL,
        owner_started TEXT NOT NULL    -- '<boot id>/<start ticks>', or '' where unknown
    );
    """,
    # 3: the number of letters of each status, kept by triggers in the transaction
    # that writes the letter, so that counts() reads three rows instead of an index.
    """
    CREATE TABLE letter_counts (
        status TEXT PRIMARY KEY,
        letters INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO letter_counts (status, letters)
        SELECT name, (SELECT count(*) FROM dead_letters WHERE status = name)
        FROM (SELECT 'dead' AS name UNION ALL SELECT 'delivered' UNION ALL SELECT 'discarded');
    CREATE TRIGGER letter_counted AFTER INSERT ON dead_letters BEGIN
        UPDATE letter_counts SET letters = letters + 1 WHERE status = NEW.status;
    END;
    CREATE TRIGGER letter_recounted AFTER UPDATE OF status ON dead_letters WHEN OLD.status != NEW.status BEGIN
        UPDATE letter_counts SET letters = letters - 1 WHERE status = OLD.status;
        UPDATE letter_counts SET letters = letters + 1 WHERE status = NEW.status;
    END;
    CREATE TRIGGER letter_uncounted AFTER DELETE ON dead_letters BEGIN
        UPDATE letter_counts SET letters = letters - 1 WHERE status = OLD.status;
    END;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection: sqlite3.Connection, path: str) -> None:
    """Brings the database to SCHEMA_VERSION, or refuses one from a newer brace."""
    if connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    # IMMEDIATE, then read the version again: another process may be migrating the same file.
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ValueError(f"path {path!r} holds dead letters of schema version {version}; "
                             f"this brace reads versions up to {SCHEMA_VERSION}")  # fmt: skip
        for script in MIGRATIONS[version:]:
            # Statement by statement (executescript would commit the BEGIN first);
            # a trigger's body holds semicolons of its own, so pieces are joined
            # until SQLite says they make a complete statement.
            statement = ""
            for piece in script.split(";"):
                statement += piece + ";"
                if sqlite3.complete_statement(statement):
                    if statement.strip(" \n;"):
                        connection.execute(statement)
                    statement = ""
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")

