"""Frozen pydantic models, no I/O: the request, the input document, the decision."""
