"""What the tests share besides fixtures (those are in ``tests/conftest.py``): tiny runs, saved tiny pipelines,
training logs, the mocked Hub, and the worker scripts that tests launch in subprocesses."""
