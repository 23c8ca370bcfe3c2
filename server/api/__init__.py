"""HTTP adapter: thin routers over the use cases, pydantic at the edge."""
