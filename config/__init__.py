"""Configuration: the one Settings class, reference data and rule files."""
