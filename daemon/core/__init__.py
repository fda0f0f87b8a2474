"""Plumbing every part uses: atomic writes, threads, the instance lock, logs, paths."""
