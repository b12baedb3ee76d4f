"""既存住基 + CS: the resident register (住民基本台帳) and its community server."""
