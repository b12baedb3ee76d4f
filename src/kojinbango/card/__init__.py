"""The 個人番号カード as the holder has it: the chip (a file), the reader, the JPKI certificate profile.

Organisation-free: J-LIS's card centre writes chips with it, relying parties verify with it, and the
holder's reader enforces the PINs with it.  Imports point down only (to ``kojinbango.domain``).
"""
