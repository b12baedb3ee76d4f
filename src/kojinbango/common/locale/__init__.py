"""Message catalogues of the screens (``en.po``), read by ``kojinbango.common.i18n``."""
