"""Model registry: built-in benchmark models plus user factories (`module:fn`, `file.py:fn`).

The specs live in registry.py (torch); this package root answers "is this a model?" without
importing torch, so the CLI rejects a typo at once. Its other names load registry.py lazily.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUILTIN_NAMES", "ModelError", "ModelSpec", "check_model_ref", "get_model",
           "import_user_module", "list_models", "with_data"]

BUILTIN_NAMES = ("digits-mlp", "digits-cnn", "mlp", "crepe-tiny", "crepe-full", "resnet18-digits",
                 "mobilenetv2-digits", "resnet18", "mobilenetv2", "encoder")


class ModelError(ValueError):
    """A model reference cannot be resolved or built; the message is meant for the user."""


def unknown_model(ref: str) -> ModelError:
    hint = " (user models: path/to/file.py:factory)" if ref.endswith(".py") else ""
    return ModelError(f"unknown model '{ref}'; known models: {', '.join(BUILTIN_NAMES)}{hint}")


def check_model_ref(ref: str, input_shape: tuple[int, ...] | None = None) -> None:
    """Cheap checks of a model reference (no torch, no import of the user's module): a
    built-in name, or `file.py:factory` naming an existing file; ModelError otherwise."""
    from edgebench.models.user import is_file_target

    if ref in BUILTIN_NAMES:
        return
    if ":" not in ref:
        raise unknown_model(ref)
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise ModelError(f"model '{ref}': expected package.module:factory or file.py:factory")
    if is_file_target(target) and not Path(target).expanduser().is_file():
        raise ModelError(f"model '{ref}': file not found: {target}")
    if input_shape is None:
        raise ModelError(f"model '{ref}': user models need an input shape, "
                         "e.g. --input-shape 1,3,224,224")


def __getattr__(name: str):
    if name.startswith("__") or name == "registry":
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module("edgebench.models.registry"), name)
