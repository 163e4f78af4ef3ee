"""``python -m gml_ray.cli``: the same as ``gml-ray``."""
from gml_ray.cli.main import main

main()
