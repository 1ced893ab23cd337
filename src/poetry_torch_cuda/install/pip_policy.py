"""Which of the user's pip settings the plugin's own pip call overrides, and why.

The plugin decides where its packages come from (the variant's index) and which
versions (the locked ones, the rest pinned). pip settings that would change
that — from the environment (``PIP_*``) or from pip.conf — are neutralised for
that one call, by environment variables, which pip reads after its config
files: ``no-index``, ``index-url`` (set to the variant's index),
``extra-index-url``, ``find-links`` and ``constraint``. Every other setting
(proxy, ``cert``, ``trusted-host``, ``timeout``, ``retries``, cache, ...) is
kept: those say how to reach an index, not which one.
"""

from __future__ import annotations


#: Variables that override the index-selecting pip settings (pip's empty list / off).
NEUTRALISED: dict[str, str] = {
    "PIP_NO_INDEX": "0",
    "PIP_EXTRA_INDEX_URL": "",
    "PIP_FIND_LINKS": "",
    "PIP_CONSTRAINT": "",
}
