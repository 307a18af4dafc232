"""Notion sync: the gate status and verification runs, kept current where the PMO reads them."""
