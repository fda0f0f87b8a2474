"""Where results go: the sidecar, XMP keywords, the library index, events, hooks."""
