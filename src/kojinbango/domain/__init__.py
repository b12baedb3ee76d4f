"""Pure domain rules: identifiers and check digits, matching keys for names, kana and addresses,
和暦 dates and the standard 続柄 vocabulary. No I/O of any kind lives in this package."""
