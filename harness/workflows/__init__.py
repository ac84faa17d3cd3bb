"""Questions answered with runs: compare variants, recommend settings, gate on a baseline, the delivery lab. They return data; the report package draws it."""
