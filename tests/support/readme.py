"""The README's commands, for tests: the parser lives with the demo that runs them too."""

from localcluster.readme import bash_blocks, block_with  # noqa: F401
