"""The brute_force policy: lock out sources of repeated failed authentications."""
