"""The training data's order as a function of (seed, epoch): nst.training.sampling."""

from __future__ import annotations

import pytest
import torch

from nst.io.image import save_image
from nst.training.data import PhotoDataModule
from nst.training.sampling import EpochSampler


def test_an_epochs_order_depends_on_seed_and_epoch_only():
    a, b = EpochSampler(20, seed=3), EpochSampler(20, seed=3)
    torch.manual_seed(0)
    first = list(a)
    torch.manual_seed(1)  # the global RNG plays no part
    assert list(b) == first
    assert sorted(i for i, _ in first) == list(range(20))
    a.epoch = 1
    assert list(a) != first
    assert list(EpochSampler(20, seed=4)) != first


def test_seeds_of_neighbouring_runs_and_epochs_differ():
    orders = set()
    for seed in range(3):
        for epoch in range(3):
            s = EpochSampler(50, seed=seed)
            s.epoch = epoch
            orders.add(tuple(i for i, _ in s))
    assert len(orders) == 9  # seed + epoch collisions (0, 1) vs (1, 0) would merge two


def test_skipping_yields_the_rest_of_the_epoch():
    s = EpochSampler(10, seed=0)
    whole = list(s)
    s.consumed(4)
    assert list(s) == whole[4:]
    assert len(s) == 10  # len stays the whole epoch


def test_the_next_pass_after_a_consumed_epoch_starts_the_next_epoch():
    s = EpochSampler(10, seed=0)
    s.consumed(4)
    s.set_epoch(5)  # Lightning's epoch count: ignored
    assert len(list(s)) == 6 and s.epoch == 0  # a pass part way through goes on with that epoch
    s.consumed(6)
    nxt = list(s)
    assert s.epoch == 1 and len(nxt) == 10
    ref = EpochSampler(10, seed=0)
    ref.epoch = 1
    assert nxt == list(ref)


def test_ranks_split_one_order_without_overlap():
    shares = [list(EpochSampler(11, seed=0, num_replicas=2, rank=r)) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 5  # the odd sample is dropped: equal steps per rank
    assert not {i for i, _ in shares[0]} & {i for i, _ in shares[1]}
    whole = list(EpochSampler(11, seed=0))
    assert shares[0] == whole[0:10:2] and shares[1] == whole[1:10:2]


def test_state_round_trips_and_resumes_the_same_samples():
    s = EpochSampler(12, seed=5)
    s.epoch = 2
    s.consumed(6)
    want = list(s)
    t = EpochSampler(12, seed=5)
    t.load_state_dict(s.state_dict())
    assert t.epoch == 2 and list(t) == want


def test_a_state_at_the_end_of_an_epoch_resumes_at_the_next_one():
    s = EpochSampler(8, seed=0)
    s.consumed(8)
    t = EpochSampler(8, seed=0)
    t.load_state_dict(s.state_dict())
    nxt = EpochSampler(8, seed=0)
    nxt.epoch = 1
    assert list(t) == list(nxt) and t.epoch == 1


def test_a_share_holds_whole_batches_only():
    s = EpochSampler(11, seed=0, num_replicas=2, batch_size=2)
    assert len(s) == len(list(s)) == 4  # 5 samples a rank, 2 batches of 2


def test_resuming_on_another_number_of_ranks_trains_each_remaining_sample_once():
    two = [EpochSampler(16, seed=1, num_replicas=2, rank=r) for r in range(2)]
    for s in two:
        s.consumed(3)  # 6 of 16 trained on, 3 by each rank
    state = two[0].state_dict()
    one = EpochSampler(16, seed=1)
    one.load_state_dict(state)
    done = {i for s in two for i, _ in list(EpochSampler(16, seed=1, num_replicas=2, rank=s.rank))[:3]}
    rest = {i for i, _ in one}
    assert len(rest) == 10 and not rest & done


@pytest.fixture
def photos(tmp_path):
    g = torch.Generator().manual_seed(0)
    for i in range(6):
        save_image(torch.rand(1, 3, 40, 44, generator=g), tmp_path / f"{i}.png")
    return tmp_path


def _batches(dm, n=None):
    out = []
    for b in dm.train_dataloader():
        b = dm.on_before_batch_transfer(b, 0)
        out.append(b["input"])
        if n is not None and len(out) == n:
            break
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_a_restored_loader_gives_the_remaining_batches_of_the_same_crops(photos, workers):
    """With worker processes too: the crops come from each sample's seed, not a worker's RNG."""
    kw = dict(root=str(photos), crop_size=16, batch_size=2, num_workers=workers, scale=(0.5, 1.0),
              short_side=32, epoch_size=12, min_images=2, seed=7)
    ref = PhotoDataModule(**kw)
    whole = _batches(ref)
    assert len(whole) == 6
    first = PhotoDataModule(**kw)
    loader = first.train_dataloader()
    taken = 0
    for b in loader:  # consume 2 batches, as training steps would
        first.on_before_batch_transfer(b, 0)
        taken += 1
        if taken == 2:
            break
    state = loader.state_dict()
    again = PhotoDataModule(**kw)
    resumed = again.train_dataloader()
    resumed.load_state_dict(state)
    rest = [b["input"] for b in resumed]
    assert len(rest) == 4
    for got, want in zip(rest, whole[2:]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_crops_vary_between_samples_and_epochs(photos):
    dm = PhotoDataModule(root=str(photos), crop_size=16, batch_size=2, scale=(0.5, 1.0), short_side=32,
                         epoch_size=6, min_images=2)
    loader = dm.train_dataloader()
    e0 = torch.cat([dm.on_before_batch_transfer(b, 0)["input"] for b in loader])
    e1 = torch.cat([dm.on_before_batch_transfer(b, 0)["input"] for b in loader])  # the next pass
    assert loader.sampler.epoch == 1
    assert not torch.equal(e0, e1)
    assert len({tuple(x.flatten()[:8].tolist()) for x in e0}) == len(e0)
