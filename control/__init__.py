"""Voxline control plane: the Quart service that serves the documented API."""

import email_validator

# Self-hosted installs use `.local` addresses (the demo admin is demo@voxline.local), which
# email-validator refuses as a special-use name by default; every other rule still applies.
if "local" in email_validator.SPECIAL_USE_DOMAIN_NAMES:
    email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("local")
