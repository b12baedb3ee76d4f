"""Alembic environment of the portal's やりとり履歴 tables (their own history in the portal's database)."""

from kojinbango.common.alembic_env import run
from kojinbango.portal.records_models import Base

run(Base.metadata)
