"""The run record: its typed schema and sections, typed JSON, redaction, and the files a run leaves."""
