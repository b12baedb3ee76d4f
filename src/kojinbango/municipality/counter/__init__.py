"""Seed 3-2, gathering at the counter (窓口での情報収集) with the resident's card."""
