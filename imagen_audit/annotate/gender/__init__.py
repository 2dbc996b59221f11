"""Perceived-gender backends, one module each: ``dlib_onnx`` (default), ``deepface``, ``clip``.

Each returns P(female) per face; :func:`imagen_audit.annotate.base.decide_gender` turns it
into 'female', 'male' or 'unknown' with the annotator's threshold. These are perceived
gender *presentations* of images, estimated with known error rates, never identities.
"""
