"""Data files of the consent package (the restricted code lists)."""
