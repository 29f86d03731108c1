"""Architecture tests share the top-level fixtures (``fake_dist`` lives in tests/conftest.py)."""
