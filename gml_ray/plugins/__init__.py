"""The plugin contracts and their registries: what a user's code may implement.

Each module holds one contract and the registry that a config's ``type:`` picks from:
:mod:`.searcher` (``SEARCHERS``), :mod:`.assessor` (``ASSESSORS``), :mod:`.stop_criterion`
(``STOP_CRITERIONS``), :mod:`.filter_criterion` (``FILTER_CRITERIONS``); :mod:`.registry` is
the mmengine-style :class:`~gml_ray.plugins.registry.Registry` they share. The built-in
implementations register from :mod:`gml_ray.searchers` and :mod:`gml_ray.assessors`.
"""
