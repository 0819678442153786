"""HTTP adapter: FastAPI routers over the domain services, versioned under /api/v1."""
