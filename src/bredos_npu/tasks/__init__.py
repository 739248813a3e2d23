"""Pure pre- and post-processing over numpy arrays and PIL images, one module per task."""
