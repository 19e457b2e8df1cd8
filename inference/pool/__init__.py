"""The GPU pool: agents on GPU hosts launch vLLM servers on command (over Redis)."""
