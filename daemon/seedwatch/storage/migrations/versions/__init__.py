"""Alembic revision scripts; each one works on SQLite and PostgreSQL."""
