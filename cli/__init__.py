"""The gml-ray command line (installed as ``gml_ray.cli``)."""
