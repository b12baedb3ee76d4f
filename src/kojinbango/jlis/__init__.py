"""J-LIS (地方公共団体情報システム機構) side: number generation and its records."""
