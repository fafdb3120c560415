"""Privacy on the server: what runs against the server's database on top of the pure core
in ``baat.privacy``.

The privacy tables (``schema.py``, on the server's shared metadata), the server's receipt
signing keys, the consent ledger and its signed head, the consent view, the gate and the
jobs that pass it, transfers between regions (``regions.py``), retention, the rights of
access, rectification and erasure, transparency reports, ``PrivacyService`` (``service.py``)
and its HTTP routes (``http.py``). See ``docs/PRIVACY.md``.
"""
