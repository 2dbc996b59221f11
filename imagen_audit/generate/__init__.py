"""Generate: turn a plan of samples into images, stage by stage, through a generator.

Backends are chosen by name (``make_generator``): ``imagen-cascade``, ``tiny-cascade``
(the embedded default), ``diffusers:ID_OR_PATH`` and ``folder:PATH``.
"""

from imagen_audit.generate.base import Generator, GeneratorOptions, available, make_generator

__all__ = ["Generator", "GeneratorOptions", "available", "make_generator"]
