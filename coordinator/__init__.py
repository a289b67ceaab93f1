"""PulsarDB coordinator: the public HTTP API (FastAPI) over a StorageBackend."""
