"""``poetry torch-cuda export --variant V``: a hash-pinned install list for Docker and CI."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import option
from poetry.console.commands.group_command import GroupCommand
from poetry.core.version.helpers import format_python_constraint

from poetry_torch_cuda.commands.base import ReportsErrors
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.client import IndexUnavailableError
from poetry_torch_cuda.index.client import project_client
from poetry_torch_cuda.index.credentials import index_access
from poetry_torch_cuda.lockfile import export
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.service import configured
from poetry_torch_cuda.lockfile.service import entry_for
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.project.selection import selection_from
from poetry_torch_cuda.project.selection import selection_options
from poetry_torch_cuda.project.variants import not_a_variant
from poetry_torch_cuda.project.variants import parse_variant
from poetry_torch_cuda.urls import without_credentials


if TYPE_CHECKING:
    from cleo.io.inputs.option import Option

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant

FORMATS = ("requirements.txt", "pylock.toml")


class ExportCommand(ReportsErrors, GroupCommand):
    """Export the project's locked packages with the variant's locked build."""

    name = "torch-cuda export"
    description = (
        "Export a hash-pinned requirements.txt or pylock.toml with the variant's "
        "build, from poetry.lock and torch-cuda.lock."
    )
    options: ClassVar[list[Option]] = [
        option(
            "variant", None, "The locked variant to export (e.g. cu129).", flag=False
        ),
        option(
            "format",
            "f",
            f"The format: {' or '.join(FORMATS)}.",
            flag=False,
            default="requirements.txt",
        ),
        option("output", "o", "Write to this file instead of stdout.", flag=False),
        *selection_options(),
    ]
    help = (
        "Writes what a clean environment needs to reproduce this project with the "
        "variant's build: Poetry's locked packages (poetry.lock, with hashes and "
        "markers) and the variant's build and CUDA wheels (torch-cuda.lock). "
        "<c1>pip install --require-hashes -r requirements.txt</> (or, pip >= 26.1, "
        "<c1>pip install -r pylock.toml</>) installs it, e.g. in a Dockerfile. "
        "Reads the two locks (pylock.toml: and the index pages, for the file URLs); "
        "never writes a credential."
    )

    _client: IndexClient | None = None

    def work(self) -> int:
        """Write the export to stdout or ``--output``."""
        config = configured(self.poetry.pyproject.data)
        fmt = self.option("format")
        if fmt not in FORMATS:
            raise TorchCudaError(
                f"--format must be {' or '.join(FORMATS)}, got {fmt!r}."
            )
        value = self.option("variant") or config.variant.name
        try:
            variant = parse_variant(value)
        except ValueError as error:
            raise TorchCudaError(f"--variant {not_a_variant(value, error)}") from None
        if variant.kind == "auto":
            raise TorchCudaError(
                "--variant must name a build (e.g. cu129): an image is built for one."
            )
        if not self.poetry.locker.is_locked():
            raise TorchCudaError("poetry.lock does not exist; run `poetry lock` first.")
        entry, reasons = entry_for(self.poetry, config, variant)
        if entry is None:
            raise TorchCudaError(
                f"{LOCK_NAME} has no {variant}; add it to lock-variants and run "
                "`poetry torch-cuda lock` (export reads the locks, not the index)."
            )
        if reasons:
            raise TorchCudaError(
                f"{LOCK_NAME} does not match poetry.lock ({reasons[0]}); run "
                "`poetry torch-cuda lock` first."
            )
        selection = selection_from(self)
        packages = export.select(
            self.poetry, config.package_names, entry, selection.groups, selection.extras
        )
        secret = self._credentialed_indexes(config, variant)
        if fmt == "pylock.toml":
            text = export.pylock_toml(
                variant.name,
                packages,
                format_python_constraint(self.poetry.package.python_constraint),
                secret,
                self._file_url,
            )
        else:
            text = export.requirements_txt(variant.name, packages, secret)
        output = self.option("output")
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.line_error(
                f"{PREFIX}: wrote {output} ({variant}, {len(packages)} packages)"
            )
        else:
            self.io.write(text)
        return 0

    def _credentialed_indexes(
        self, config: TorchCudaConfig, variant: Variant
    ) -> list[str]:
        """Indexes Poetry has credentials for: named in a comment, never written."""
        found = []
        if index_access(config, variant, self.poetry.config).has_credentials:
            found.append(without_credentials(config.index_url(variant)).rstrip("/"))
        for source in self.poetry.get_sources():
            url = source.url or ""
            if url and (
                "@" in url or self.poetry.config.get(f"http-basic.{source.name}")
            ):
                found.append(without_credentials(url).rstrip("/"))
        return found

    def _file_url(self, index: str, name: str, filename: str) -> str:
        """A file's URL as the index's page gives it (cached for 10 minutes)."""
        if self._client is None:
            self._client = project_client(self.poetry)
        try:
            page = self._client.project(index, name)
        except IndexUnavailableError as error:
            raise TorchCudaError(
                f"pylock.toml needs the URL of {filename}, read from {index}/{name}/, "
                f"and the index did not answer ({error}). Export while it answers "
                "(its pages are then cached for 10 minutes), or export "
                "requirements.txt, which needs no URL."
            ) from None
        for entry in page.entries:
            if entry.filename == filename:
                return without_credentials(entry.url)
        raise TorchCudaError(
            f"pylock.toml needs the URL of {filename}, and {index}/{name}/ does not "
            "list it (any more). Run `poetry lock` to lock what the index has."
        )
