"""Sampling noise keyed to each row's history (recbole_dreamrec.model.noise)."""

import math

import pytest
import torch

from recbole_dreamrec.model.noise import KeyedNoise, history_keys, mix32


def reference_mix32(x):  # lowbias32 with Python's unbounded integers
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_mix32_matches_the_reference_hash_in_plain_integers():
    values = [0, 1, 2, 12345, 2**31 - 1, 2**31, 2**32 - 1, 0xDEADBEEF]
    assert mix32(torch.tensor(values)).tolist() == [reference_mix32(v) for v in values]


def test_history_keys_match_their_definition_in_plain_integers():
    """The whole-batch keys equal the documented formula computed one row and one position at a time."""
    generator = torch.Generator().manual_seed(1)
    seq = torch.randint(0, 2**31, (20, 7), generator=generator)
    length = torch.randint(1, 8, (20,), generator=generator)
    seed = 2**32 + 5  # only its low 32 bits count
    expected = []
    for row, n in zip(seq.tolist(), length.tolist()):
        total = sum(reference_mix32(reference_mix32(item) ^ reference_mix32(j + 0x9E3779B9)) for j, item in
                    enumerate(row[:n]))
        key = reference_mix32((seed & 0xFFFFFFFF) ^ reference_mix32(n))
        expected.append(reference_mix32(key ^ (total & 0xFFFFFFFF)))
    assert history_keys(seq, length, seed).tolist() == expected


def test_keyed_noise_matches_box_muller_in_plain_python():
    """Draw i of a row: base = mix32(key ^ mix32(i)); dimensions 2p and 2p + 1 are Box-Muller's r cos and r sin of
    the uniforms (mix32(base ^ 2p) + 0.5) / 2^32 and (mix32(base ^ (2p + 1)) + 0.5) / 2^32; an odd D drops the last."""
    keys = [0, 1, 0xDEADBEEF, 2**32 - 1]
    for i, dim in [(0, 4), (3, 5), (2**32 + 7, 1)]:
        expected = []
        for key in keys:
            base = reference_mix32(key ^ reference_mix32(i & 0xFFFFFFFF))
            row = []
            for p in range(0, dim + 1, 2):
                u1 = (reference_mix32(base ^ p) + 0.5) / 2.0**32
                u2 = (reference_mix32(base ^ (p + 1)) + 0.5) / 2.0**32
                radius, angle = math.sqrt(-2.0 * math.log(u1)), 2.0 * math.pi * u2
                row += [radius * math.cos(angle), radius * math.sin(angle)]
            expected.append(row[:dim])
        noise = KeyedNoise(torch.tensor(keys))(i, (len(keys), dim), dtype=torch.float64)
        assert noise.dtype == torch.float64
        torch.testing.assert_close(noise, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_keys_depend_on_seed_items_and_length_but_not_on_padding():
    seq = torch.tensor([[5, 7, 0, 0], [5, 7, 9, 0], [7, 5, 0, 0], [5, 7, 3, 3]])
    length = torch.tensor([2, 3, 2, 2])
    keys = history_keys(seq, length, seed=1).tolist()
    assert keys[0] != keys[1] and keys[0] != keys[2]  # one more item; same items in another order
    assert keys[3] == keys[0]  # positions past the length are padding, whatever they hold
    assert history_keys(seq, length, seed=2).tolist()[0] != keys[0]


def test_keyed_noise_is_standard_normal_and_independent_across_draws_and_dimensions():
    generator = torch.Generator().manual_seed(0)
    seq = torch.randint(1, 1000, (4000, 8), generator=generator)
    noise = KeyedNoise(history_keys(seq, torch.full((4000,), 8), seed=0))
    z = noise(0, (4000, 64)).double()
    n = z.numel()
    assert abs(z.mean().item()) < 4 / math.sqrt(n)
    assert z.var().item() == pytest.approx(1.0, abs=4 * math.sqrt(2 / n))
    assert (z**4).mean().item() == pytest.approx(3.0, abs=0.1)  # normal kurtosis
    corr = torch.corrcoef(z.T)
    off_diagonal = corr[~torch.eye(64, dtype=torch.bool)]
    assert off_diagonal.pow(2).mean().sqrt().item() == pytest.approx(1 / math.sqrt(4000), rel=0.15)
    assert abs((z * noise(1, (4000, 64)).double()).mean().item()) < 4 / math.sqrt(n)  # draw 1 is not draw 0


def test_a_rows_noise_is_its_own():
    seq = torch.randint(1, 50, (10, 5), generator=torch.Generator().manual_seed(3))
    keys = history_keys(seq, torch.full((10,), 5), seed=9)
    whole = KeyedNoise(keys)(4, (10, 6))
    assert torch.equal(KeyedNoise(keys[3:5])(4, (2, 6)), whole[3:5])
    assert torch.equal(KeyedNoise(keys)(4, (10, 5)), whole[:, :5])  # a dimension's value does not depend on D
    with pytest.raises(ValueError, match="rows"):
        KeyedNoise(keys)(0, (9, 6))


def test_keys_of_several_seeds_are_each_seeds_keys():
    seq = torch.randint(1, 50, (6, 5), generator=torch.Generator().manual_seed(4))
    length = torch.tensor([1, 2, 3, 4, 5, 5])
    keys = history_keys(seq, length, [7, 8, 2**32 + 7])
    assert keys.shape == (3, 6)
    assert keys[0].tolist() == history_keys(seq, length, 7).tolist() == keys[2].tolist()  # low 32 bits only
    assert keys[1].tolist() == history_keys(seq, length, 8).tolist() and keys[1].tolist() != keys[0].tolist()
