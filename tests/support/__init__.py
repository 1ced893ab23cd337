"""Test support: fake wheels, a fake package universe, a local PEP 503/691
index server and helpers that drive the real ``poetry`` executable."""
