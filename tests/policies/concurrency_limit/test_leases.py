"""Memory leases: for any sequence of acquires and releases, never more than max are held."""

from __future__ import annotations

from hypothesis import given, strategies as st

from bastion.counters.leases import Lease, MemoryLeases

OPS = st.lists(
    st.tuples(st.sampled_from(["acquire", "release", "release_again"]), st.sampled_from("abc")),
    max_size=200,
)


@given(OPS, st.integers(min_value=1, max_value=5))
def test_held_leases_match_a_model_and_never_exceed_max(ops, limit):
    store = MemoryLeases()
    live: dict[str, list[Lease]] = {"a": [], "b": [], "c": []}
    spent: list[Lease] = []
    for op, key in ops:
        if op == "acquire":
            grant = store.acquire(key, limit)
            assert grant.allowed == (len(live[key]) < limit)
            if grant.allowed:
                assert grant.lease is not None
                live[key].append(grant.lease)
            else:
                assert grant.lease is None
            assert grant.held == len(live[key])
        elif op == "release" and live[key]:
            lease = live[key].pop(0)
            lease.release()
            spent.append(lease)
        elif op == "release_again" and spent:
            spent[-1].release()  # a second release of an ended request changes nothing
        for name, leases in live.items():
            assert store.held(name) == len(leases) <= limit
    assert len(store) == sum(1 for leases in live.values() if leases)
