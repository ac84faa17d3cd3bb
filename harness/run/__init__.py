"""One run end to end: the runner, the plan's replay, load runs, teardown, OS signals and the hook protocol."""
