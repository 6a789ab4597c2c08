"""embmap: how interchangeable are the embedding spaces of neural networks."""

__version__ = "0.1.0"
