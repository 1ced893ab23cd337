"""Installing: plan, pip, diagnosis, env lock, installed view and protection."""
