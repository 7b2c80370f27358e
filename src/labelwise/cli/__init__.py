"""The ``labelwise`` command line: a thin door onto the same services as the API."""
