"""Sans-IO core: the request context, the policy base, the chain and the router."""
