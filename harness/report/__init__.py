"""Reports: they read a run record and never measure anything themselves."""
