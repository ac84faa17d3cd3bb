"""Stands in for your project's Celery module: an app and a task, nothing oomlab-specific."""

from celery import Celery

app = Celery("shop")
app.conf.task_track_started = True


@app.task(name="shop.render_invoice")
def render_invoice(order_id: int, lines: int) -> int:
    rows = [f"{order_id}-{i}-" + "x" * 200 for i in range(lines)]  # ~250 bytes a line
    return len(rows)
