"""Storage: SQLAlchemy models, Alembic migrations, and every query the daemon and CLI run.

SQLite (WAL) is the single-host default; PostgreSQL (psycopg 3) lets several daemons share the
work through leases. The same migrations and queries serve both.
"""
