"""Step programs of the Druppie CI/CD catalog, one module per step, plumbing in ``core``."""

__version__ = "0.1.0"
