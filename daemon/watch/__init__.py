"""Finding photos: folder observers, settling, scans, the watched-folder set."""
