"""oomlab's version, in one place: pyproject.toml reads it, `oomlab --version` prints it, the Docker
worker image is tagged with it. A module of its own so any layer can read it without importing
oomlab's public face (which loads the layers above)."""

__version__ = "0.1.0"
