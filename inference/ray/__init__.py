"""Models on Ray Serve LLM (`POOL=ray`): one Serve application per model, put through the
Ray dashboard's declarative REST API; Ray schedules the engines across its hosts."""
