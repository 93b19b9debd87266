"""dsfeatures: an online feature store.

Packages: :mod:`dsfeatures.wire` (wire types), :mod:`dsfeatures.registry`
(group definitions), :mod:`dsfeatures.client` (the Python SDK),
:mod:`dsfeatures.errors`; the daemon lives in ``service``, ``stores``, ``api``
and ``server``.
"""

__all__: list[str] = []
