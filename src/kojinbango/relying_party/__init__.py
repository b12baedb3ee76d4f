"""A sample private relying party (署名検証者): an online bank opening accounts with the 署名用電子証明書."""
