"""外部機関: a national agency that queries and provides over the network — 日本年金機構 (``nenkin``).

It runs its own business system (被保険者, 年金の受給) and its own instance of the intermediate-server
software (``kojinbango.intermediate``) on its own database, with itself as the only tenant, as
national agencies run their own 中間サーバ."""
