"""TEST-ONLY stand-in for torchvision, so that timm's *model* code imports here.

timm imports torchvision at module level for data transforms, datasets and
FrozenBatchNorm2d, none of which building a model without pretrained weights uses.
PyPI's torchvision does not load beside this torch build, so ``install()`` puts an
import hook in front of ``sys.meta_path`` that answers every ``torchvision.*`` import
with an empty module whose attributes are inert placeholder classes. Nothing here runs
torchvision code; a test that needs real torchvision behaviour must not use this.
Only installed when torchvision itself cannot be imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types


class _Placeholder(type):
    """A class whose unknown class attributes are strings (e.g. InterpolationMode.NEAREST)."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return f"{cls.__name__}.{name}"


class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _Placeholder(name, (), {"__init__": lambda self, *args, **kwargs: None})
        setattr(self, name, value)
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Module(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        if module.__name__ == "torchvision":
            module.__version__ = "0.0+afbench-test-stand-in"


def install() -> None:
    """Install the stand-in unless a real torchvision imports."""
    try:
        import torchvision  # noqa: F401
        return
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
