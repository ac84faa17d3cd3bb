"""Developer tools that run from the repository (not installed with oomlab)."""
