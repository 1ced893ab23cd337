"""The package index: HTTP client, offers, credentials and the wording of its failures."""
