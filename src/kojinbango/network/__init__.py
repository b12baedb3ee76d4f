"""情報提供ネットワークシステム (情報提供NWS): the core and the IF system in front of it.

* the **IF system** (``interface``) is the only part intermediate servers talk to: it accepts
  queries, gives each a 処理通番, delivers them to the provider's intermediate server (retrying while
  it is down) and holds answers until the querier collects them;
* the **core** (``core``) issues 符号 (from 住民票コード relayed by J-LIS), authorises every query
  against the legal table, translates the querier's 符号 into the provider's, and keeps the
  provision records (情報提供等記録, 番号法23条3項) as an append-only Merkle log (RFC 9162).
"""
