"""Deterministic synthetic-nation generator: residents, households and real addresses.

Used by the demo, the tests and the benchmarks.  Same arguments → same output in any
process (SHA-256-derived seeds, private ``random.Random``; never the global RNG or ``hash``).

>>> import datetime
>>> hh = generate_population("131016", 100, seed=1, as_of=datetime.date(2025, 4, 1))
>>> sum(len(h.members) for h in hh)
100
"""

from .addresses import Municipality, Neighborhood, municipality, municipality_names
from .model import HouseholdSpec, PersonSpec, full_kana, full_name
from .population import (
    CENSUS_2020_AGE_SHARES,
    RELATIONSHIPS,
    age_on,
    generate_birth,
    generate_household,
    generate_population,
    identity_groups,
)

__all__ = [
    "CENSUS_2020_AGE_SHARES",
    "RELATIONSHIPS",
    "HouseholdSpec",
    "Municipality",
    "Neighborhood",
    "PersonSpec",
    "age_on",
    "full_kana",
    "full_name",
    "generate_birth",
    "generate_household",
    "generate_population",
    "identity_groups",
    "municipality",
    "municipality_names",
]
