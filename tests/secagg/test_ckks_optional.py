"""``secagg`` imports without TenSEAL; using the ``ckks`` backend then names the extra."""

import sys

import pytest

import secagg


def test_missing_tenseal_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tenseal", None)  # makes `import tenseal` fail
    monkeypatch.setitem(sys.modules, "tenseal.sealapi", None)
    with pytest.raises(secagg.MissingExtraError, match=r"blindsum\[ckks\]"):
        secagg.CKKSKeys.generate()
    with pytest.raises(ImportError):  # also an ImportError, for callers that catch that
        secagg.CKKSBackend.generate()


def test_params_validate_without_tenseal():
    params = secagg.CKKSParams()
    assert params.slots == 2048 and params.headroom == 2.0**18
