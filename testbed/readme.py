"""The commands a README shows, so that tests and `make demo` run exactly those (and the README stays true)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path


def bash_blocks(markdown: Path) -> list[list[str]]:
    """Every ```bash block as a list of commands: continuation lines joined, comments dropped."""
    blocks = []
    for body in re.findall(r"```bash\n(.*?)```", markdown.read_text(), flags=re.S):
        commands, current = [], ""
        for line in body.splitlines():
            current += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
            if not line.rstrip().endswith("\\"):
                words = shlex.split(current, comments=True)
                if words:
                    commands.append(shlex.join(words))
                current = ""
        blocks.append(commands)
    return blocks


def yaml_blocks(markdown: Path) -> list[str]:
    """Every ```yaml block's text, in order."""
    return re.findall(r"```yaml\n(.*?)```", markdown.read_text(), flags=re.S)


def block_with(markdown: Path, prefix: str, without: str = "") -> list[str]:
    """The commands of the one bash block that has a command starting with ``prefix`` (and, with
    ``without``, none containing that text: e.g. the plain run beside its OTAP or rollback variant)."""
    found = [b for b in bash_blocks(markdown) if any(c.startswith(prefix) for c in b)
             and not (without and any(without in c for c in b))]  # fmt: skip
    if len(found) != 1:
        raise LookupError(f"{markdown.name}: {len(found)} bash blocks with a command starting {prefix!r}")
    return found[0]
