"""The municipality's card desk (個人番号カード交付窓口): applications, cards waiting in the safe,
hand-over with PIN setting, PIN resets, lifting suspensions, 廃止 and reissue."""
