"""``python -m gml_ray.cli``: the same as ``gml-ray``."""
from .main import main

main()
