"""``poetry torch-cuda`` alone (and ``--help``): the subcommands, one line each.

cleo runs the longest registered name the command line starts with, so a
mistyped subcommand lands here and is answered with the list and exit 1.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import metadata

from cleo.helpers import argument
from poetry.console.commands.command import Command

from poetry_torch_cuda import COMMANDS


NAMESPACE = "torch-cuda"
DISTRIBUTION = "poetry-torch-cuda"
#: Shown when the installed metadata names no documentation address.
README = "README.md of poetry-torch-cuda (in its repository and source distribution)"


def overview() -> list[str]:
    """The listing, in Poetry's styles, with the documentation's address from the
    installed metadata (else where the README is)."""
    entries = []
    for name, target in sorted(COMMANDS.items()):
        module, _, attribute = target.partition(":")
        if name.startswith(f"{NAMESPACE} "):
            description = getattr(import_module(module), attribute).description
            entries.append((name[len(NAMESPACE) + 1 :], str(description)))
    address = README
    for entry in metadata(DISTRIBUTION).get_all("Project-URL") or []:
        label, _, url = str(entry).partition(",")
        if label.strip().lower() == "documentation":
            address = url.strip()
    width = max((len(name) for name, _ in entries), default=0)
    lines = ["<b>Commands</> (<c1>poetry torch-cuda COMMAND</>):"]
    lines += [f"  <c1>{name:<{width}}</>  {text}" for name, text in entries]
    lines += [
        "",
        "One command's options: <c1>poetry torch-cuda COMMAND --help</>",
        f"<b>Documentation:</> {address}",
    ]
    return lines


class OverviewCommand(Command):
    """``poetry torch-cuda``: list the subcommands."""

    name = NAMESPACE
    description = "List the torch-cuda commands (PyTorch's CUDA builds for Poetry)."
    arguments = [  # noqa: RUF012 - cleo reads class attributes
        argument(
            "subcommand",
            "A torch-cuda command; an unknown one is answered with the list.",
            optional=True,
            multiple=True,
        )
    ]

    def __init__(self) -> None:
        super().__init__()
        self.help = "\n".join(overview())

    def handle(self) -> int:
        """Print the list; exit 1 when the words name no subcommand."""
        words = self.argument("subcommand")
        if words:
            self.line_error(
                f"The requested command <c1>{words[0]}</> does not exist in the "
                f"<c1>{NAMESPACE}</> namespace."
            )
        write = self.line_error if words else self.line
        for line in overview():
            write(line)
        return 1 if words else 0
