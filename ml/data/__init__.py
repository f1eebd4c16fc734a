"""Data files shipped with the ml package (class lists)."""
