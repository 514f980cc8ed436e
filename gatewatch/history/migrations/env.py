"""Alembic's environment for the history store: always run programmatically by
:meth:`gatewatch.history.store.HistoryStore.migrate`, which hands over an open connection
(``config.attributes["connection"]``); there is no ``alembic.ini``."""

from __future__ import annotations

from alembic import context

from gatewatch.history.schema import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
