"""From a run to a product: ONNX export, torch-free inference, emotion over time, the web service.

Layering: ``meta``, ``onnx_backend``, ``audio_stream``, ``segments`` and ``vad`` need only numpy, soundfile, soxr
and onnxruntime (the ``emoshift predict`` path on an exported run imports nothing else); ``graph``, ``torch_backend``
and ``export`` need torch; ``serve`` adds FastAPI. ``emoshift.deploy.predict`` builds on this package.
"""
