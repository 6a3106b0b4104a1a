"""The corpus holds broken scenarios on purpose: never collect them as scenarios, even if someone runs
``pytest --distproc-scenarios tests``. test_loader.py reads them directly."""

collect_ignore_glob = ["*.yaml", "*.yml"]
