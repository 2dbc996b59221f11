"""imagen-audit: audit text-to-image diffusion models for social bias and safety."""

__version__ = "0.1.0"
