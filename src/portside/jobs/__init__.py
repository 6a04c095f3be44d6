"""The persistent job system: executions made of tasks in the database, workers that claim tasks,
and a cron scheduler that fires each schedule once per tick across any number of replicas."""
