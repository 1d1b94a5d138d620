"""The one Spearman rank correlation (lengen.stats) used by the protocol report, the zoo report and
``lengen check``."""

import math

import numpy as np
import pytest

from lengen.check.run import spearman as check_spearman
from lengen.report.protocol import spearman as protocol_spearman
from lengen.stats import ranks, spearman


def test_ranks_average_ties():
    assert ranks([10, 20, 20, 5]).tolist() == [1.0, 2.5, 2.5, 0.0]
    assert ranks([3, 3, 3]).tolist() == [1.0, 1.0, 1.0]


def test_spearman_ties_monotone_and_sign():
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 1, 2, 3]), np.array([5.0, 5, 6, 7])) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties on one side: Pearson of the average ranks [0.5, 0.5, 2, 3] and [0, 1, 2, 3]
    assert spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(np.corrcoef([0.5, 0.5, 2, 3], [0, 1, 2, 3])[0, 1])


def test_spearman_undefined_is_nan():
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))  # constant: undefined, not 0
    assert math.isnan(spearman(np.ones(4), np.arange(4)))
    assert math.isnan(spearman([1.0], [2.0]))  # too few points
    assert math.isnan(spearman([], []))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def test_callers_keep_their_forms():
    assert protocol_spearman([1, 2, 3], [5, 5, 5]) is None  # the protocol report's "undefined" is None
    assert math.isnan(check_spearman(np.array([1, 1, 1]), np.array([1, 2, 3])))
