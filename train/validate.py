"""Check every ``_target_`` node of a config against its target's signature, before running.

Structured schemas catch misspelt keys of the nodes they type (analyses, trainers);
the other groups (data samplers, models, optimisers, costs) are typed by the code
they call. A key that the target does not accept fails here, at start, with the
node's path and the accepted names, instead of minutes later at instantiation.
"""

from __future__ import annotations

import inspect
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig

__all__ = ["check_targets", "ConfigKeyError"]

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


class ConfigKeyError(ValueError):
    """A config key that its ``_target_`` does not accept."""


def _parameters(target: Any) -> tuple[set[str], bool]:
    """Accepted keyword names, and whether ``**kwargs`` is taken."""
    if inspect.isclass(target):  # NNX module classes: their metaclass hides __init__'s signature
        target = target.__init__
    params = inspect.signature(target).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def check_targets(node: Any, path: str = "") -> None:
    """Raise :class:`ConfigKeyError` for the first key a ``_target_`` does not accept.

    Walks ``node`` (a DictConfig/ListConfig) recursively; nodes without ``_target_``
    are walked but not checked.
    """
    if isinstance(node, DictConfig):
        target_name = node.get("_target_") if "_target_" in node else None
        if target_name is not None:
            try:
                target = get_object(str(target_name))
            except Exception as err:
                raise ConfigKeyError(f"{path or '<root>'}._target_: cannot import {target_name!r} ({err})") from err
            names, var_kw = _parameters(target)
            unknown = [k for k in node.keys() if k not in _HYDRA_KEYS and k not in names]
            if unknown and not var_kw:
                raise ConfigKeyError(
                    f"config key{'s' if len(unknown) > 1 else ''} {', '.join(f'{path}.{k}'.lstrip('.') for k in unknown)}"
                    f" not accepted by {target_name}; accepted: {', '.join(sorted(names))}")
        for key in node.keys():
            check_targets(node[key], f"{path}.{key}".lstrip("."))
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            check_targets(item, f"{path}[{i}]")
