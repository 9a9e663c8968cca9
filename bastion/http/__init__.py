"""Sans-IO HTTP helpers: headers, requests, responses, paths, forwarding headers, CIDRs."""
