"""What the environment holds, its lock and where state files live."""
