"""Bundled demo datasets (public, small, label column `target`)."""
