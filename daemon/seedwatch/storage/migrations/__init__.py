"""Alembic migrations, configured in code by ``seedwatch.storage.db.alembic_config``."""
