"""J-LIS's card centre (個人番号カードの製造・管理) and its JPKI certificate authority (公的個人認証)."""
