"""What the benchmark and the tests share: settings apart from the host's, throwaway
PostgreSQL schemas, and an orchestrator instance in its own process that runs a job's
fires through the real runner (``race_worker``)."""
