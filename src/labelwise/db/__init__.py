"""Database rows (SQLAlchemy 2.0), engine and session, migrations."""
