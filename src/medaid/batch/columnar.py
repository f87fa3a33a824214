"""The columnar settlement core under its former name: :func:`settle_frame` lives in
:mod:`medaid.batch.settle` (its steps: :mod:`.placement`, :mod:`.ordering`, :mod:`.arithmetic`,
:mod:`.tables`; docs/columnar.md).  Kept so that ``from medaid.batch.columnar import
settle_frame`` goes on working."""

from .settle import settle_frame

__all__ = ["settle_frame"]
