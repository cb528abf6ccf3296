"""Workers: the claim loop, lease heartbeats, outcome recording, recovery of dead workers' tasks."""

from omniq.worker._options import WorkerOptions
from omniq.worker._standalone import import_task_modules, run_worker
from omniq.worker._worker import Worker, default_worker_id

__all__ = ["Worker", "WorkerOptions", "default_worker_id", "import_task_modules", "run_worker"]
