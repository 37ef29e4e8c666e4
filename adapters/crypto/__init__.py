"""Crypto-shredding: personal values sealed with their subject's key, erased by destroying the key.

:mod:`.keys` (the master key and the key-provider port), :mod:`.envelope` (sealing and
revealing values), :mod:`.keyring` (subjects' keys: made, cached, erased, re-wrapped),
:mod:`.tables` (the guarded key table of each store) and :mod:`.erasure` (erasing a subject).
"""

from phaselog.adapters.crypto.keyring import KeyRing
from phaselog.adapters.crypto.keys import MASTER_KEY_ENV, KeyProvider, MasterKey, master_key_from_env
from phaselog.adapters.crypto.tables import KeyRow, KeyTable, key_table

__all__ = [
    "MASTER_KEY_ENV",
    "KeyProvider",
    "KeyRing",
    "KeyRow",
    "KeyTable",
    "MasterKey",
    "key_table",
    "master_key_from_env",
]
