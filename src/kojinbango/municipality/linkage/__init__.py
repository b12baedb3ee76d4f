"""The municipality's side of information linkage (seed 3-3): 符号 acquisition through J-LIS, the 副本
its business systems register at the intermediate server, and queries whose signed answers are
written to its own database."""
