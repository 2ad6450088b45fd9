"""Inference backends: the contract (base), the AR1 torch backend and a fake test double.

`create_backend(BackendSettings(...))` builds one; torch is imported only for kind 'torch'.
"""
from ar1_ros.runtime.backends.base import (
    BACKEND_KINDS,
    DTYPES,
    FAKE_MODES,
    BackendSettings,
    InferenceBackend,
    create_backend,
)

__all__ = ['BACKEND_KINDS', 'DTYPES', 'FAKE_MODES', 'BackendSettings', 'InferenceBackend',
           'create_backend']
