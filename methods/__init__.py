"""Semantic image synthesis methods: the registry and the Method contract.

Built-in methods live in sub-packages of ``methods`` and register with ``@register_method``;
third-party packages declare an entry point in the group ``harness.methods``.
"""
from dataclasses import is_dataclass

from harness.core.registry import Registry
from methods.base import (ImportReport, Method, Nets, NonFiniteLoss, NotSupported, Phase, Runtime,
                          StepPolicy, run_phases)


def _validate(name, cls):
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"method {name!r} must be a subclass of methods.base.Method, got {cls!r}")
    if not is_dataclass(getattr(cls, "Config", None)):
        raise TypeError(f"method {name!r} ({cls.__module__}.{cls.__qualname__}) must define a "
                        "dataclass `Config` of its hyper-parameters")
    if not cls.name:
        cls.name = name


METHODS: Registry[type[Method]] = Registry(
    "method", builtin_packages=("methods",), entry_point_group="harness.methods",
    validate=_validate)


def register_method(name: str):
    """Class decorator registering a built-in method under `name`."""
    def decorator(cls):
        cls.name = name
        return METHODS.register(name)(cls)
    return decorator


__all__ = ["ImportReport", "METHODS", "Method", "Nets", "NonFiniteLoss", "NotSupported", "Phase",
           "Runtime", "StepPolicy", "register_method", "run_phases"]
