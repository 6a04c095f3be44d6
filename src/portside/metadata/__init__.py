"""Registry metadata on SQLAlchemy: tables, the database handle and the queries the registry runs."""
