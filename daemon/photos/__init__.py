"""Photo files: which files count as photos, reading and decoding one."""
