"""Seed 3-1, push notices (プッシュ型お知らせ): target conditions, count and sample, confirmation,
delivery to the portal inbox or a printed letter, read status."""
