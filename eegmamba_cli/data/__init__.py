"""Datasets: the corpus registry, loaders, preprocessing and the window cache."""
