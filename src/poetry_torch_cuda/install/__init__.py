"""Carrying a change out: the plan, the locked files and their download, pip, the stash and the sweep."""
