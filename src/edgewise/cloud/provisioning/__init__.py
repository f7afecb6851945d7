"""Fleet provisioning by claim: provisioning templates, certificate ownership tokens, and RegisterThing."""
