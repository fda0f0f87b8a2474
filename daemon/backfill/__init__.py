"""Labelling a whole existing library as one batch job, locally or on Ray."""
