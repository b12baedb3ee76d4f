"""団体内統合宛名: one 統合宛名番号 per person, tying every business record to the right person."""
