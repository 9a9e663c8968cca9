"""Memory quota counts: for any sequence of takes and refunds, within the limit per period."""

from __future__ import annotations

from hypothesis import given, strategies as st

from bastion.counters.quota_store import MemoryQuotas

OPS = st.lists(
    st.tuples(
        st.sampled_from(["take", "refund"]), st.sampled_from("ab"), st.sampled_from(["d1", "d2"])
    ),
    max_size=200,
)


@given(OPS, st.integers(min_value=1, max_value=6))
def test_counts_match_a_model_and_stay_within_the_limit(ops, limit):
    store = MemoryQuotas()
    model: dict[str, tuple[str, int]] = {}

    def used(key: str, label: str) -> int:
        found = model.get(key)
        return found[1] if found is not None and found[0] == label else 0

    for op, key, label in ops:
        before = used(key, label)
        if op == "take":
            usage = store.take(key, label, limit)
            assert usage.allowed == (before < limit)
            if usage.allowed:
                model[key] = (label, before + 1)  # a new period replaces the old count
            assert usage.used == used(key, label)
        elif before > 0:
            store.refund(key, label)
            model[key] = (label, before - 1)
        else:
            store.refund(key, label)  # nothing counted in this period: nothing to take back
        assert store.used(key, label) == used(key, label) <= limit
