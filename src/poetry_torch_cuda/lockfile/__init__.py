"""torch-cuda.lock: its format, reader and writer (``model``), the locker and
keeping it in step (``service``: :class:`~.service.LockLookup` is what an
install holds) and the export."""
