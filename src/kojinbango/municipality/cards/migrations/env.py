"""Alembic environment of the municipality's card desk (version table alembic_version_cards)."""

from kojinbango.common.alembic_env import run
from kojinbango.municipality.cards.models import Base

run(Base.metadata)
