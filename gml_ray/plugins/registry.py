"""Registries that turn a config's ``type:`` into a class, and the ``custom_imports`` loader.

Usage mirrors mmengine: decorate a class with ``@REGISTRY.register_module()``; a config mapping
``{type: Name, **kwargs}`` then builds ``Name(**kwargs)``.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from typing import Any, Callable, Iterable


class BuildError(ValueError):
    """A config mapping that does not build; ``key`` is the mapping's key at fault (or None)."""

    def __init__(self, message: str, key: str | None) -> None:
        super().__init__(message)
        self.key = key


class Registry:
    """A named mapping from class names (and aliases) to classes.

    ``locations``: the modules whose import registers the built-in classes (as mmengine's
    ``Registry(locations=...)``). They are imported on the first lookup, so the contract module
    that owns a registry never imports its implementations.
    """

    def __init__(self, name: str, locations: Iterable[str] = ()) -> None:
        self.name = name
        self._modules: dict[str, type] = {}
        self._locations = list(locations)

    def _load_locations(self) -> None:
        while self._locations:
            importlib.import_module(self._locations.pop(0))

    def register_module(self, name: str | None = None, force: bool = False,
                        module: type | None = None, aliases: Iterable[str] = ()) -> Callable:
        """Register ``module`` (or the decorated class) under its name and ``aliases``."""

        def _register(cls: type) -> type:
            for key in [name or cls.__name__, *aliases]:
                old = self._modules.get(key)
                # The same plugin module loaded again (another run, an edited file) replaces itself.
                reloaded = old is not None and (old.__module__, old.__qualname__) == (
                    cls.__module__, cls.__qualname__)
                if not force and old is not None and old is not cls and not reloaded:
                    raise KeyError(f"{key} is already registered in {self.name} "
                                   f"(by {old.__module__}.{old.__qualname__})")
                self._modules[key] = cls
            return cls

        if module is not None:
            return _register(module)
        return _register

    def get(self, key: str) -> type | None:
        self._load_locations()
        return self._modules.get(key)

    def __contains__(self, key: str) -> bool:
        self._load_locations()
        return key in self._modules

    def __len__(self) -> int:
        self._load_locations()
        return len(self._modules)

    @property
    def module_dict(self) -> dict[str, type]:
        self._load_locations()
        return dict(self._modules)

    def suggest(self, key: str) -> str:
        """A ' (did you mean X?)' hint for an unknown key, or ''."""
        self._load_locations()
        match = difflib.get_close_matches(str(key), list(self._modules), n=1, cutoff=0.6)
        return f" (did you mean {match[0]}?)" if match else ""

    def build(self, cfg: dict[str, Any], shared: dict[str, Any] | None = None, **default_args: Any) -> Any:
        """Build ``cfg['type'](**rest, **default_args)`` — the one build path of the YAML config
        and the manual's ``build_*`` API.

        ``shared`` settings (a task's ``optimize_mode``, ``parallel_size``, ...) are passed only
        to a class whose constructor takes them and only where ``cfg`` does not set them. An
        unknown type, an unknown keyword or a constructor that raises is a :class:`BuildError`
        naming the key at fault.
        """
        self._load_locations()
        args = dict(cfg)
        key = args.pop("type", None)
        cls = self._modules.get(key) if isinstance(key, str) else key
        if cls is None:
            raise BuildError(f"unknown {self.name} {key!r}{self.suggest(str(key))}; "
                             f"known: {', '.join(sorted(self._modules))}", "type")
        for name, value in (shared or {}).items():
            if name not in args and name in accepted_kwargs(cls):
                args[name] = value
        bad = unknown_kwargs(cls, [*args, *default_args])
        if bad:
            options = [k for k in accepted_kwargs(cls) if k not in default_args]
            raise BuildError(f"{key} has no parameter {bad[0]!r} (it takes: {', '.join(options) or 'nothing'})",
                             bad[0])
        for k, v in default_args.items():
            args.setdefault(k, v)
        try:
            return cls(**args)
        except Exception as exc:  # noqa: BLE001 - whatever the plugin raises, it is about this config
            text = str(exc) or type(exc).__name__
            # "n_initial_points must be ..." is about that key: the error names it.
            first = re.match(r"[A-Za-z_]\w*", text)
            at = first.group(0) if first and first.group(0) in cfg and first.group(0) != "type" else None
            raise BuildError(f"{key}: {text}", at) from None

    def __repr__(self) -> str:
        self._load_locations()
        return f"Registry({self.name}: {sorted(self._modules)})"


def unknown_kwargs(cls: type, kwargs: Iterable[str]) -> list[str]:
    """The names in ``kwargs`` that ``cls.__init__`` would not accept."""
    try:
        sig = inspect.signature(cls.__init__)  # type: ignore[misc]  # the class's own constructor
    except (TypeError, ValueError):
        return []
    params = list(sig.parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return []
    accepted = {p.name for p in params
                if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return [k for k in kwargs if k not in accepted]


def accepted_kwargs(cls: type) -> list[str]:
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # type: ignore[misc]
    except (TypeError, ValueError):
        return []
    return [p.name for p in params
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]


_loaded_files: dict[str, Any] = {}


def is_plugin_path(entry: str) -> bool:
    """A ``custom_imports`` entry naming a file (rather than an importable module)."""
    return entry.endswith(".py") or os.sep in entry


def import_custom(entries: Iterable[str], base_dir: str) -> None:
    """Import each ``custom_imports`` entry: a path to a .py file (relative to ``base_dir``) or a module.

    Importing runs the plugin's ``register_module`` decorators. A file is loaded once per process.
    """
    if base_dir not in sys.path:
        sys.path.insert(0, base_dir)
    for entry in entries:
        if is_plugin_path(entry):
            path = os.path.abspath(os.path.join(base_dir, entry))
            if path in _loaded_files:
                continue
            if not os.path.isfile(path):
                raise FileNotFoundError(path)
            mod_name = "gml_custom_" + os.path.splitext(os.path.basename(path))[0]
            spec = importlib.util.spec_from_file_location(mod_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(mod_name, None)
                raise
            _loaded_files[path] = module
        else:
            importlib.import_module(entry)
