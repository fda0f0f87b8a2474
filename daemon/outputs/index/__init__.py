"""The library index: every labelled photo in SQLite, kept in step with sidecars."""
