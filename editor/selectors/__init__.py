"""Reads, one module per area. Every function takes the acting user (or is staff-only) and scopes to it."""
