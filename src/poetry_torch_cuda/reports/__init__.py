"""Reports over the project, the machine and the environment: status and the lock-time view."""
