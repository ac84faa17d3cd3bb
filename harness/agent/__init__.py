"""`oomlab agent`: the lab's OOM detection beside a production worker, and the repair of what a kill
leaves behind (a task's state, a redelivery loop). An application like the CLI: it runs the user's
own `celery ... worker` command unchanged as its child and reads the probe's events from a socket."""
