"""Temporal smoothing: noise reduction on known trajectories, zero phase, constants and NaN gaps."""
import numpy as np
import pytest

from maskpose.smoothing import SmoothingError, butterworth, finite_runs, min_run_length, one_euro, smooth


def rms(a, b):
    return float(np.sqrt(np.nanmean((a - b) ** 2)))


def sine_trajectory(fps, seconds, freq, amp, noise, seed=0, J=5):
    t = np.arange(int(fps * seconds)) / fps
    offsets = np.arange(J)[None, :, None] * 50.0 + np.array([0.0, 100.0, 900.0])[None, None, :]
    truth = amp * np.sin(2 * np.pi * freq * t)[:, None, None] + offsets
    noisy = truth + np.random.default_rng(seed).normal(0.0, noise, truth.shape)
    return truth, noisy


def test_butterworth_reduces_noise_on_a_sine():
    """60 fps, 1 Hz sine of 100 mm + 10 mm white noise: the 6 Hz zero-phase low-pass keeps the
    signal and removes most noise (measured: 10.0 -> 4.3 mm RMS, factor 2.3; the expected factor
    for white noise is about sqrt(30 / 6) = 2.2)."""
    truth, noisy = sine_trajectory(60, 10, 1.0, 100.0, 10.0)
    out = smooth(noisy, 60, "butterworth", cutoff=6.0)
    before, after = rms(noisy, truth), rms(out, truth)
    assert before / after > 2.0, (before, after)
    assert out.shape == noisy.shape


def test_one_euro_reduces_noise_on_slow_motion():
    """30 fps, 0.2 Hz sine of 100 mm + 10 mm noise, default parameters: error falls by a factor
    ~1.6 (a causal filter: on fast motion it trades noise for lag, see the lag test below)."""
    truth, noisy = sine_trajectory(30, 20, 0.2, 100.0, 10.0)
    out = smooth(noisy, 30, "oneeuro")
    before, after = rms(noisy, truth), rms(out, truth)
    assert before / after > 1.4, (before, after)
    # standing still: stronger smoothing (measured factor ~2.2)
    still = np.full((600, 3, 3), 500.0)
    noisy_still = still + np.random.default_rng(1).normal(0, 10.0, still.shape)
    assert rms(noisy_still, still) / rms(one_euro(noisy_still, 30), still) > 1.8


def test_one_euro_beta_reduces_lag_on_fast_motion():
    """The speed term: with beta > 0 the filter follows a fast sine better than with beta = 0."""
    truth, _ = sine_trajectory(60, 5, 2.0, 300.0, 0.0)
    slow = rms(one_euro(truth, 60, min_cutoff=1.0, beta=0.0), truth)
    fast = rms(one_euro(truth, 60, min_cutoff=1.0, beta=0.05), truth)
    assert fast < 0.5 * slow, (slow, fast)


def test_butterworth_has_zero_phase_lag():
    """The peaks of a filtered clean sine stay where they were (a causal filter of the same design
    moves them later)."""
    from scipy.signal import butter, sosfilt

    fps, f = 100.0, 1.0
    t = np.arange(1000) / fps
    x = np.sin(2 * np.pi * f * t)[:, None, None] * np.ones((1, 1, 3))
    y = butterworth(x, fps, cutoff=5.0)
    peaks_in = [i for i in range(1, 999) if x[i, 0, 0] > x[i - 1, 0, 0] and x[i, 0, 0] >= x[i + 1, 0, 0]]
    peaks_out = [i for i in range(1, 999) if y[i, 0, 0] > y[i - 1, 0, 0] and y[i, 0, 0] >= y[i + 1, 0, 0]]
    assert len(peaks_in) == len(peaks_out) == 10
    assert max(abs(a - b) for a, b in zip(peaks_in, peaks_out)) <= 1
    causal = sosfilt(butter(4, 5.0, fs=fps, output="sos"), x[:, 0, 0])
    lagged = [i for i in range(1, 999) if causal[i] > causal[i - 1] and causal[i] >= causal[i + 1]]
    assert np.median(np.array(lagged[1:]) - np.array(peaks_in[1:len(lagged)])) >= 5  # > 50 ms late


@pytest.mark.parametrize("method", ["oneeuro", "butterworth"])
def test_constant_signal_is_unchanged(method):
    x = np.tile(np.array([[120.0, -40.0, 930.0], [0.0, 15.5, 1700.0]]), (200, 1, 1))
    np.testing.assert_allclose(smooth(x, 50, method), x, rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", ["oneeuro", "butterworth"])
def test_nan_gaps_are_preserved_and_runs_filtered_separately(method):
    truth, noisy = sine_trajectory(60, 6, 0.5, 100.0, 8.0, J=2)
    noisy[100:130] = np.nan           # a frame gap (all joints)
    noisy[200:205, 1, 2] = np.nan     # one coordinate missing for a few frames
    out = smooth(noisy, 60, method)
    assert np.array_equal(np.isnan(out), np.isnan(noisy))
    fin = np.isfinite(noisy)
    assert rms(out[fin], truth[fin]) < rms(noisy[fin], truth[fin])
    # the run after the gap does not see the values before it: filtering it alone gives the same
    alone = smooth(noisy[130:], 60, method)
    np.testing.assert_allclose(out[130:, 0], alone[:, 0], atol=1e-9)
    assert not np.allclose(out[130:, 0], smooth(np.nan_to_num(noisy), 60, method)[130:, 0], atol=1e-3)


def test_butterworth_leaves_short_runs_as_they_are():
    n = min_run_length(4)
    x = np.random.default_rng(0).normal(0, 5, (60, 1, 3))
    x[n - 1] = np.nan  # a run of n - 1 samples, then a gap
    out = butterworth(x, 30, cutoff=5.0)
    np.testing.assert_array_equal(out[: n - 1], x[: n - 1])
    assert not np.allclose(out[n:], x[n:])


def test_finite_runs():
    assert finite_runs(np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], bool)) == [(0, 2), (3, 4), (6, 9)]
    assert finite_runs(np.zeros(3, bool)) == []


def test_bad_parameters_are_clear_errors():
    x = np.zeros((50, 2, 3))
    with pytest.raises(SmoothingError, match="cutoff must be in"):
        smooth(x, 10, "butterworth", cutoff=6.0)
    with pytest.raises(SmoothingError, match="unknown smoothing method 'kalman'"):
        smooth(x, 10, "kalman")
    with pytest.raises(SmoothingError, match="no parameter"):
        smooth(x, 10, "oneeuro", cutoff=2.0)
    with pytest.raises(SmoothingError, match="fps"):
        smooth(x, 0, "oneeuro")
    with pytest.raises(SmoothingError, match="inf"):
        smooth(np.full((5, 1, 3), np.inf), 10, "oneeuro")
