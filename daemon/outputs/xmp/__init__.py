"""Keywords in XMP sidecars that photo managers read, kept in step with ours."""
