"""Reading a task: ``search_config.yaml`` parsed once into typed objects.

Modules: :mod:`.task` (the task config and its sections), :mod:`.search_args` (the search args),
:mod:`.files` (File-arg config files), :mod:`.validate` (field checks and their messages),
:mod:`.template` and :mod:`.shell_context` (the command template, read as bash reads it),
:mod:`.render` (a config's command and files for one job), :mod:`.slurm` (``srun`` options).

The public names (a facade): :func:`load_config`, :func:`parse_config`, :class:`TaskConfig`.
"""
from gml_ray.config.task import PluginConfig, TaskConfig, load_config, parse_config

__all__ = ["PluginConfig", "TaskConfig", "load_config", "parse_config"]
