"""The package index: HTTP client, offers, credentials and URL hygiene."""
