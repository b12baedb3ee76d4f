"""既存業務: the municipality's existing business systems (tax, welfare …), each with its own 宛名番号."""
