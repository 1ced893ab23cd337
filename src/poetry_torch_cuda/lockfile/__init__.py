"""torch-cuda.lock: its format (``model``), its locking and upkeep (``service``)."""
