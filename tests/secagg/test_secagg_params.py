"""The SecAgg+ graph parameter finder against fcp's published values, an exact oracle and
its monotonicity properties."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import secagg
from secagg import ConfigurationError, GraphParameters, ThreatModel, find_parameters

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "secagg" / "graph_parameters.json"
DATA = json.loads(VECTORS.read_text())


def _case_id(case: dict) -> str:
    return f"n{case['clients']}-a{case['corrupt']}-d{case['dropout']}-{case['threat']}"


def _find(case: dict) -> GraphParameters:
    return find_parameters(clients=case["clients"], corrupt=case["corrupt"],
                           dropout=case["dropout"], threat=case["threat"])


@pytest.mark.parametrize("case", DATA["harary"], ids=_case_id)
def test_fcp_known_answers(case):
    got = _find(case)
    assert (got.neighbours, got.threshold) == (case["neighbours"], case["threshold"]), case["source"]
    assert not got.complete
    assert got.threat is ThreatModel(case["threat"])
    assert got.minimum_survivors == math.ceil(case["clients"] * (1 - case["dropout"]))
    # The achieved bounds meet the targets: 2^-41 per security event, 2^-20 for failure.
    assert got.log2_disconnection < -41
    assert got.log2_corrupt_reconstruction < -41
    # ... except where fcp raises t to 2 (its Shamir minimum) above t2: e.g. n = 10,
    # a = 0.05, d = 0.33 gives k = 4, t = 2 although P(fewer than 2 survive) is 1/30.
    assert got.log2_too_few_survivors < -20 or got.threshold == 2


@pytest.mark.parametrize("case", DATA["complete_graph"], ids=_case_id)
def test_complete_graph_fallback(case):
    got = _find(case)
    assert got.complete and got.neighbours == case["clients"] - 1
    assert got.threshold == case["threshold"] == got.minimum_survivors


@pytest.mark.parametrize("case", DATA["invalid"], ids=_case_id)
def test_invalid_configurations_name_the_rule(case):
    with pytest.raises(ConfigurationError, match=None) as info:
        _find(case)
    assert case["error_mentions"] in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("case", DATA["complete_graph_threshold_check"],
                         ids=lambda c: c["source"].split(".")[-1].split(" ")[0])
def test_fcp_complete_graph_threshold_check(case):
    args = {k: case[k] for k in ("clients", "corrupt", "dropout", "threat")}
    for t in case.get("valid_thresholds", []):
        secagg.check_complete_graph(threshold=t, **args)
    for t in case.get("invalid_thresholds", []):
        with pytest.raises(ConfigurationError, match="threshold"):
            secagg.check_complete_graph(threshold=t, **args)


def test_complete_graph_check_semi_malicious_rule():
    args = {"clients": 100, "corrupt": 0.3, "dropout": 0.4, "threat": "semi-malicious"}
    secagg.check_complete_graph(threshold=66, **args)  # >= 60 and > ceil((100 + 30) / 2)
    with pytest.raises(ConfigurationError, match=r"ceil\(\(clients \+ corrupt"):
        secagg.check_complete_graph(threshold=65, **args)
    with pytest.raises(ConfigurationError, match="dropout"):
        secagg.check_complete_graph(threshold=59, **{**args, "threat": "semi-honest"})


def test_bell_et_al_table_values_from_peers():
    # PEERS.md (Google's production finder, as in Bell et al. CCS 2020), n = 1000.
    assert find_parameters(clients=1000, dropout=0.05, corrupt=0.05).neighbours == 30
    assert find_parameters(clients=1000, dropout=0.33, corrupt=0.33).neighbours == 286


@pytest.mark.parametrize(
    ("kwargs", "mentions"),
    [
        ({"clients": 100.0}, "clients"),
        ({"clients": True}, "clients"),
        ({"dropout": float("nan")}, "dropout"),
        ({"corrupt": -0.01}, "corrupt"),
        ({"corrupt": "0.1"}, "corrupt"),
        ({"threat": "malicious"}, "threat"),
        ({"security_bits": 0}, "security_bits"),
        ({"security_bits": 257}, "security_bits"),
        ({"correctness_bits": 2.5}, "correctness_bits"),
    ],
)
def test_argument_errors(kwargs, mentions):
    args = {"clients": 100, "dropout": 0.1, "corrupt": 0.1, **kwargs}
    with pytest.raises(ConfigurationError, match=mentions):
        find_parameters(**args)


def test_threat_accepts_enum_or_value_and_bits_change_the_answer():
    a = find_parameters(clients=1000, dropout=0.1, corrupt=0.1, threat="semi-malicious")
    b = find_parameters(clients=1000, dropout=0.1, corrupt=0.1,
                        threat=ThreatModel.SEMI_MALICIOUS)
    assert a == b
    weaker = find_parameters(clients=1000, dropout=0.1, corrupt=0.1, security_bits=20,
                             correctness_bits=10)
    stronger = find_parameters(clients=1000, dropout=0.1, corrupt=0.1, security_bits=80)
    base = find_parameters(clients=1000, dropout=0.1, corrupt=0.1)
    assert weaker.neighbours <= base.neighbours <= stronger.neighbours


def test_graph_parameters_validate():
    GraphParameters(clients=10, neighbours=4, threshold=3)
    GraphParameters(clients=10, neighbours=9, threshold=10)
    for bad in ({"neighbours": 3}, {"neighbours": 10}, {"neighbours": 0}, {"threshold": 1},
                {"threshold": 6}, {"clients": 1, "neighbours": 0}, {"minimum_survivors": 11}):
        with pytest.raises(ConfigurationError):
            GraphParameters(**{"clients": 10, "neighbours": 4, "threshold": 3, **bad})
    with pytest.raises(dataclasses_frozen_error()):
        GraphParameters(clients=10, neighbours=4, threshold=3).threshold = 2  # type: ignore[misc]


def dataclasses_frozen_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_exported_from_package():
    for name in ("ThreatModel", "GraphParameters", "find_parameters", "harary_graph",
                 "complete_graph", "check_complete_graph", "NeighbourGraph"):
        assert name in secagg.__all__ and hasattr(secagg, name)


# ------------------------------------------------------------------ exact oracle
# A slow, independent implementation of the same rules: one k at a time, exact rational
# hypergeometric tails from binomial coefficients, no logarithms.


def _oracle(n: int, a: float, d: float, threat: str, s: int = 40, c: int = 20):
    if (threat == "semi-honest" and a + d > 0.9) or (threat == "semi-malicious"
                                                      and a + 2 * d > 0.9):
        return None
    corrupt = math.floor((a + 1e-14) * n)
    bad = corrupt + math.floor((d + 1e-14) * n)
    alive = math.ceil((1 - d - 1e-14) * n)
    q1, q2 = Fraction(1, 2 ** (s + 1) * n), Fraction(1, 2**c * n)
    for k in range(2, n - 1, 2):
        if k <= bad:
            # falling factorials: B!/(B-k)! over n!/(n-k)!
            ratio = Fraction(math.perm(bad, k), math.perm(n, k))
            if Fraction(n * (n - k - 1), 2) * ratio >= Fraction(1, 2 ** (s + 1)):
                continue
        total = math.comb(n, k)
        pmf_x = [Fraction(math.comb(corrupt, x) * math.comb(n - corrupt, k - x), total)
                 for x in range(k + 1)]
        pmf_z = [Fraction(math.comb(alive, z) * math.comb(n - alive, k - z), total)
                 for z in range(k + 1)]
        t1 = next(t for t in range(k + 1) if sum(pmf_x[t + 1:]) < q1)
        t2 = next(z for z in range(k + 1) if sum(pmf_z[: z + 1]) >= q2)
        if threat == "semi-malicious":
            t1 = math.ceil((t1 + k - 1.25) / 2)
        if t2 > t1:
            return k, max(t1 + 1, 2)
    t = math.ceil(n * (1 - d))
    limit = math.ceil(a * n) if threat == "semi-honest" else math.ceil((n + a * n) / 2)
    return (n - 1, t) if t > 1 and t > limit else None


fractions_ = st.integers(0, 18).map(lambda i: i * 0.05)
threats = st.sampled_from(["semi-honest", "semi-malicious"])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 120), a=fractions_, d=fractions_, threat=threats,
       bits=st.sampled_from([(40, 20), (40, 20), (128, 64), (8, 4), (256, 1)]))
def test_matches_exact_oracle(n, a, d, threat, bits):
    s, c = bits
    expected = _oracle(n, a, d, threat, s, c)
    kwargs = {"clients": n, "corrupt": a, "dropout": d, "threat": threat,
              "security_bits": s, "correctness_bits": c}
    if expected is None:
        with pytest.raises(ConfigurationError):
            find_parameters(**kwargs)
        return
    got = find_parameters(**kwargs)
    assert (got.neighbours, got.threshold) == expected


# -------------------------------------------------------------------- properties


def _try(n: int, a: float, d: float, threat: str) -> GraphParameters | None:
    try:
        return find_parameters(clients=n, corrupt=a, dropout=d, threat=threat)
    except ConfigurationError:
        return None


percent = st.integers(0, 90).map(lambda i: i / 100)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 5000), a=percent, d=percent, threat=threats)
def test_shape_of_any_answer(n, a, d, threat):
    got = _try(n, a, d, threat)
    if got is None:
        return
    k, t = got.neighbours, got.threshold
    assert k == n - 1 or (k % 2 == 0 and 2 <= k <= n - 2)
    assert t >= 2
    assert t <= k if not got.complete else t <= n  # fcp's self-share: t <= k + 1
    assert got.minimum_survivors == math.ceil(n * (1 - d))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 3000), a=percent, d=percent, more=st.integers(1, 30),
       threat=threats, which=st.sampled_from(["corrupt", "dropout"]))
def test_monotone_in_corrupt_and_dropout(n, a, d, more, threat, which):
    base = _try(n, a, d, threat)
    a2, d2 = (a + more / 100, d) if which == "corrupt" else (a, d + more / 100)
    if a2 >= 1 or d2 >= 1:
        return
    worse = _try(n, a2, d2, threat)
    if base is None:
        assert worse is None  # once infeasible, more corruption or dropout cannot help
    elif worse is not None:
        assert worse.neighbours >= base.neighbours


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 3000), a=percent, d=st.integers(0, 45).map(lambda i: i / 100))
def test_semi_malicious_needs_at_least_as_many_neighbours(n, a, d):
    honest = _try(n, a, d, "semi-honest")
    malicious = _try(n, a, d, "semi-malicious")
    if malicious is not None:
        assert honest is not None and malicious.neighbours >= honest.neighbours


# ----------------------------------------------------- windowed tails, exact integers


def _exact_upper_quantile(n: int, marked: int, k: int, bits: int) -> int:
    """min{t : P(X > t) < 2^-bits / n} in integers: sum C(K,x) C(n-K,k-x) 2^bits n < C(n,k)."""
    total = math.comb(n, k)
    tail = 0
    for t in range(min(k, marked), -1, -1):  # tail = sum over x > t
        if tail * 2**bits * n >= total:
            return t + 1
        tail += math.comb(marked, t) * math.comb(n - marked, k - t)
    return 0


@pytest.mark.parametrize(("n", "marked", "k", "bits"), [
    (5000, 1650, 1200, 41), (5000, 4000, 2400, 41), (5000, 250, 700, 41),
    (4000, 3000, 3500, 20), (3000, 1500, 2998, 41), (2000, 20, 900, 20),
    (6000, 5999, 3000, 41), (6000, 0, 3000, 41), (100000, 45000, 300, 41),
])
def test_windowed_upper_quantile_is_exact(n, marked, k, bits):
    from secagg._hypergeom import log_factorial_table, lower_quantile, upper_quantile

    lf = log_factorial_table(n)
    log_q = -bits * math.log(2) - math.log(n)
    ks = np.array([k, k - 2, k - 1], dtype=np.int64)
    got = upper_quantile(lf, n, marked, ks, log_q)
    assert got.tolist() == [_exact_upper_quantile(n, marked, int(j), bits) for j in ks]
    # lower quantile of Z ~ HG(n, n - marked, k) is k - the upper quantile above
    assert (lower_quantile(lf, n, n - marked, ks, log_q) == ks - got).all()
