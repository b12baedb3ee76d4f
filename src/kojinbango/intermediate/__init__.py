"""中間サーバ: between a 情報保有機関's business systems and the network's IF system.

One deployment serves many organisations (共同設置; 自治体中間サーバ・プラットフォーム), each a
*tenant* whose rows carry its organisation id and are reached only through it: a municipality acts
only on its own tenant (the tenant is the signed caller, never a parameter), and the network names
the tenant it delivers to.  Per tenant it keeps 符号 ↔ 統合宛名番号 (never a 個人番号), the 副本 of the
情報提供用DB by category, outgoing queries and incoming provisions, and the tenant's provision
records (情報提供等記録, 番号法23条1項).
"""
