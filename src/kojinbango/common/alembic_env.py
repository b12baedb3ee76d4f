"""Shared body of every organisation's Alembic ``env.py``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, engine_from_config, pool


def run(metadata: MetaData) -> None:
    config = context.config
    version_table = config.get_main_option("version_table") or "alembic_version"
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=metadata, render_as_batch=True, version_table=version_table
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        context.configure(
            connection=conn, target_metadata=metadata, render_as_batch=True, version_table=version_table
        )
        with context.begin_transaction():
            context.run_migrations()
