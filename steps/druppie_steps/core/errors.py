"""One exception type for every expected failure: it becomes one clear line and an exit code."""


class StepError(Exception):
    """A failure the user can act on. ``str(err)`` is the whole message, printed on one line."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InvalidInputError(StepError):
    """A parameter has a bad value; nothing was changed anywhere. Exit code 2, like click's usage errors."""

    exit_code = 2
