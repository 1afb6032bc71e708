"""drone-service: the water board's small example service that Druppie builds, tests and deploys."""

__version__ = "1.0.0"
