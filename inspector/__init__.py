"""Inspector: the Qt-free core of the inline inspection station."""

__version__ = "0.1.0"
