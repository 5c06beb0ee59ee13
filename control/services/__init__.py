"""Service functions: the only code that touches the ORM; each takes `workspace_id` explicitly."""
