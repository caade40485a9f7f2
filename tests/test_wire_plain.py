import numpy as np
import pytest

import secagg
from secagg._plain import PlainRequest, PlainUpdate


def test_plain_round_sums_weighted_vectors():
    rng = np.random.default_rng(0)
    backend = secagg.PlainBackend()
    xs = {cid: rng.uniform(-1, 1, 7) for cid in range(4)}
    server = backend.server_session(round_id=3, client_ids=tuple(xs), dim=7, rng=rng)
    clients = {c: backend.client_session(client_id=c, vector=x, weight=c + 1, rng=rng) for c, x in xs.items()}
    for cid, msg in server.next_messages().items():
        if cid == 2:
            server.drop(cid)
            continue
        reply = clients[cid].receive(secagg.decode(secagg.encode(msg)))
        server.receive(cid, secagg.decode(secagg.encode(reply), peer=cid))
    assert server.done
    res = server.result()
    expect = sum((c + 1) * xs[c] for c in (0, 1, 3))
    np.testing.assert_allclose(res.weighted_sum, expect)
    assert res.total_weight == 1 + 2 + 4
    assert res.contributors == (0, 1, 3) and res.dropped == (2,)


@pytest.mark.parametrize("cut", [1, 3, 5, 20])
def test_truncated_message_names_peer(cut):
    data = secagg.encode(PlainUpdate(round_id=1, vector=np.ones(3), weight=1.0))
    with pytest.raises(secagg.DecodeError) as info:
        secagg.decode(data[:-cut], peer=9)
    assert info.value.peer == 9


def test_trailing_bytes_and_unknown_tag_rejected():
    data = secagg.encode(PlainRequest(round_id=1, dim=3))
    with pytest.raises(secagg.DecodeError, match="trailing"):
        secagg.decode(data + b"x")
    with pytest.raises(secagg.DecodeError, match="tag"):
        secagg.decode(data[:3] + b"\xfe" + data[4:])
