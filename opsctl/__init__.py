"""opsctl package."""
