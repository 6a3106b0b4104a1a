"""Root conftest of this repository: our own test suite drives pytest through ``pytester``."""

pytest_plugins = ("pytester",)
