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


def overview() -> list[str]:
    """The listing, in Poetry's styles, with the documentation's address from the
    installed metadata."""
    entries = []
    for name, target in sorted(COMMANDS.items()):
        module, _, attribute = target.partition(":")
        if name.startswith(f"{NAMESPACE} "):
            description = getattr(import_module(module), attribute).description
            entries.append((name[len(NAMESPACE) + 1 :], str(description)))
    urls = metadata("poetry-torch-cuda").get_all("Project-URL") or []
    docs = next(url for url in urls if url.startswith("Documentation,"))
    width = max((len(name) for name, _ in entries), default=0)
    lines = ["<b>Commands</> (<c1>poetry torch-cuda COMMAND</>):"]
    lines += [f"  <c1>{name:<{width}}</>  {text}" for name, text in entries]
    lines += [
        "",
        "One command's options: <c1>poetry torch-cuda COMMAND --help</>",
        f"<b>Documentation:</> {docs.partition(',')[2].strip()}",
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
