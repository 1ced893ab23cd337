"""Turn ``auto`` into a concrete variant for this machine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from poetry_torch_cuda.variants import Variant


if TYPE_CHECKING:
    from poetry_torch_cuda.variants import Variant as VariantType

CPU = Variant("cpu", "cpu")


def resolve_variant(variant: VariantType) -> VariantType:
    """Return ``variant`` itself, or for ``auto`` the variant this machine should use.

    Until GPU detection lands, ``auto`` resolves to ``cpu``.
    """
    if variant.kind != "auto":
        return variant
    return CPU
