"""What the benchmark and the tests share: settings apart from the host's, throwaway
PostgreSQL schemas, an orchestrator instance in its own process that runs a job's
fires through the real runner (``race_worker``), and the work of a first start without
the scheduler (``raw_start``, the start-up benchmark's baseline)."""
