"""The labelling pipeline: jobs, decoding, inference, the one sidecar writer."""
