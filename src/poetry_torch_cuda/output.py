"""How the plugin speaks: the one output prefix, escaping and error rendering."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cleo.formatters.formatter import Formatter

from poetry_torch_cuda.urls import scrub


if TYPE_CHECKING:
    from cleo.io.io import IO

#: Every line the plugin prints about its own work starts with this.
PREFIX = "<c1>torch-cuda</>"


def esc(text: object) -> str:
    """``text`` with ``<`` escaped, so cleo prints it as it is."""
    return Formatter.escape(str(text))


def error_lines(message: str) -> list[str]:
    """``message`` scrubbed of credentials, one styled error line per line of text."""
    return [
        f"<error>{esc(line)}</>" if line else "" for line in scrub(message).splitlines()
    ]


def write_error(io: IO, message: str) -> None:
    """Print ``message`` to stderr as error lines, after an empty line."""
    io.write_error_line("\n".join(["", *error_lines(message)]))
