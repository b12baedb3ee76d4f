"""Organisation-free infrastructure shared by every organisation: PKI, signed transport, databases."""
