"""The ``medaid`` command (:func:`main`, in :mod:`.app`); its commands live in :mod:`.desk`,
:mod:`.batch` and :mod:`.report`, each imported when one of its commands is first needed."""

from .app import main

__all__ = ["main"]
