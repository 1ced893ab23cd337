"""Put an environment back exactly as it was when a step after pip failed.

Before pip runs, every file of the installed torch family (the packages pip
may change; the constraints pin everything else) is hard-linked into a stash
inside the environment: no copy, no network. pip unlinks files before it
writes new ones, so the stash keeps the old contents. To roll back, what pip
installed or changed is uninstalled and the stashed files are linked back.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from collections.abc import Mapping
    from collections.abc import Sequence

    from packaging.utils import NormalizedName


PREFIX = ".torch-cuda-rollback-"


class Stash:
    """Hard links to the files of some installed distributions, to restore them."""

    def __init__(self, root: Path, files: list[tuple[Path, Path]]) -> None:
        self.root = root
        self.files = files

    @classmethod
    def take(
        cls, paths: Sequence[str], names: Iterable[str], parent: Path
    ) -> Stash | None:
        """Link the files of ``names`` (installed under ``paths``) into a stash.

        Returns ``None`` when links cannot be made there (another filesystem,
        no permission): then there is nothing to restore from.
        """
        # Under the environment's lock: a stash left by a killed run is stale.
        for stale in parent.glob(f"{PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
        except OSError:
            return None
        files: list[tuple[Path, Path]] = []
        try:
            for name in sorted(set(names)):
                for distribution in metadata.distributions(name=name, path=list(paths)):
                    for entry in distribution.files or ():
                        source = Path(str(distribution.locate_file(entry)))
                        if not source.is_file() or source.is_symlink():
                            continue
                        kept = root / str(len(files))
                        os.link(source, kept)
                        files.append((source, kept))
                    break
        except OSError:
            shutil.rmtree(root, ignore_errors=True)
            return None
        return cls(root, files)

    def restore(self) -> None:
        """Link every stashed file back where it was (after the new ones are gone)."""
        for destination, kept in self.files:
            if destination.exists() or destination.is_symlink():
                destination.unlink()
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.link(kept, destination)

    def drop(self) -> None:
        """Remove the stash."""
        shutil.rmtree(self.root, ignore_errors=True)


def roll_back(
    stash: Stash,
    before: Mapping[NormalizedName, str],
    after: Mapping[NormalizedName, str],
    uninstall: Callable[[list[str]], None],
) -> list[str]:
    """Uninstall what changed since ``before`` and restore the stash.

    Returns the names put back (``torch 2.14.1+cu129``).
    """
    changed = sorted(name for name in after if before.get(name) != after[name])
    if changed:
        uninstall(list(changed))
    stash.restore()
    with suppress(OSError):
        stash.drop()
    return [
        f"{name} {before[name]}"
        for name in sorted(set(changed) | (set(before) - set(after)))
        if name in before
    ]
