"""Alembic environment of the intermediate server's お知らせ tables."""

from kojinbango.common.alembic_env import run
from kojinbango.intermediate.notices import Base

run(Base.metadata)
