"""Judging networks: Gatys comparison, reports, super-resolution metrics, flicker."""
