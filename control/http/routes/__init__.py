"""One blueprint per API module, each named after its URL prefix."""
