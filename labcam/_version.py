"""labcam's version, in one place: ``labcam.__version__``, the recordings' "software" field and
the package metadata (pyproject.toml reads it from here)."""

__version__ = "0.1.0"
