"""The package version, in a module of its own: saved model files record it, and reading it must not
import the package facade (``postloc/__init__`` re-exports the data API, a layer above ``io``)."""

__version__ = "0.1.0"
