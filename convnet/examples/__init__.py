"""Runnable examples of the course's ideas: ``python -m convnet.examples.NAME``."""
