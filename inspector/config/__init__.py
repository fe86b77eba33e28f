"""Validated configuration models (pydantic). Every file the station reads is one of these."""
