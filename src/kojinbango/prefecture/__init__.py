"""都道府県: the prefecture server that relays 本人確認情報 between its municipalities and J-LIS."""
