"""`ml-expert serve`: a FastAPI app over verified deployment packages (canary, metrics, drift)."""
