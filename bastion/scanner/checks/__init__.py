"""Scanner checks, one module per area; each exposes `async def run(ctx)`."""
