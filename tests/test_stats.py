"""The statistics of evalsuite/stats (numpy only) against an independent implementation (scipy)
and against cases computed by hand: p-values and their corrections, the document bootstrap,
paired tests, noise and signal, and the scaling fits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

from evalsuite.stats import bootstrap, fit, pvalues
from evalsuite.stats.curve import smoothed
from evalsuite.stats.paired import paired_tests, unpaired_tests
from evalsuite.stats.signal import noise_by_model, signal_noise

RNG = np.random.default_rng(12345)


def test_incomplete_beta_matches_scipy():
    a = np.array([0.5, 1, 2, 10, 2500, 0.5, 3, 40, 1.5])
    b = np.array([0.5, 3, 2, 20, 0.5, 2500, 7, 41, 800])
    x = np.array([0.5, 0.1, 0.9, 0.3, 0.99, 0.001, 0.5, 0.5, 0.002])
    np.testing.assert_allclose(pvalues.betainc(a, b, x), special.betainc(a, b, x), rtol=1e-10, atol=1e-14)


def test_exact_mcnemar_is_scipys_two_sided_binomial_test():
    only_a = np.array([0, 3, 0, 10, 40, 2000, 5, 0, 1, 17])
    only_b = np.array([0, 0, 9, 12, 60, 2100, 5, 1, 0, 3])
    expected = [stats.binomtest(int(min(x, y)), int(x + y), 0.5).pvalue if x + y else 1.0
                for x, y in zip(only_a, only_b)]
    np.testing.assert_allclose(pvalues.mcnemar_exact(only_a, only_b), expected, rtol=1e-10)
    # by hand: 0 of 9 discordant for A: 2 x (1/2)^9; 3 against 0: 2 x (1/2)^3
    assert pvalues.mcnemar_exact(0, 9) == pytest.approx(2 / 512, rel=1e-12)
    assert pvalues.mcnemar_exact(3, 0) == pytest.approx(0.25, rel=1e-12)


@pytest.mark.parametrize("n", [2, 3, 10, 100, 5000])
def test_paired_t_matches_scipys_ttest_rel(n):
    a, b = RNG.normal(0, 1, n), RNG.normal(0.05, 1, n)
    d = b - a
    ours = pvalues.paired_t(d.mean(), d.std(ddof=1), n)
    assert ours == pytest.approx(stats.ttest_rel(b, a).pvalue, rel=1e-9)


def test_paired_t_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 sqrt(3), 2 degrees of freedom, where the
    # two-sided p is 1 - t / sqrt(2 + t^2)
    t = 2 * math.sqrt(3)
    assert pvalues.paired_t(2.0, 1.0, 3) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-12)
    assert pvalues.paired_t(0.0, 0.0, 5) == 1.0 and np.isnan(pvalues.paired_t(1.0, 0.5, 1))


def test_unpaired_z_is_the_normal_two_sided_p():
    diff, se_a, se_b = np.array([0.03, -0.01, 0.0, 0.2]), np.array([0.01, 0.02, 0.01, 0.01]), 0.012
    z = np.abs(diff) / np.hypot(se_a, se_b)
    np.testing.assert_allclose(pvalues.unpaired_z(diff, se_a, se_b), 2 * stats.norm.sf(z), rtol=1e-12)


def test_holm_and_benjamini_hochberg():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan, 0.5])
    # Holm by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.5 times 5, 4, 3, 2, 1, never decreasing
    holm = pvalues.adjust(p, "holm")
    np.testing.assert_allclose(holm, [0.04, 0.09, 0.09, 0.025, np.nan, 0.5])
    bh = pvalues.adjust(p, "bh")
    np.testing.assert_allclose(bh[~np.isnan(p)], stats.false_discovery_control(p[~np.isnan(p)], method="bh"))
    assert np.isnan(bh[4]) and pvalues.adjust([], "holm").size == 0
    with pytest.raises(ValueError):
        pvalues.adjust(p, "bonferroni")


def test_bootstrap_is_seeded_and_agrees_with_scipy():
    right = (RNG.random(400) < 0.6).astype(float)
    scores = RNG.normal(0.5, 0.2, 400)
    for values in (right, scores):
        low, high = bootstrap.mean_intervals(values, resamples=10_000)
        assert (low, high) == bootstrap.mean_intervals(values, resamples=10_000)  # same seed, same interval
        assert (low, high) != bootstrap.mean_intervals(values, resamples=10_000, seed=1)
        theirs = stats.bootstrap((values,), np.mean, method="percentile", n_resamples=10_000,
                                 random_state=0).confidence_interval
        assert low[0] == pytest.approx(theirs.low, abs=0.004) and high[0] == pytest.approx(theirs.high, abs=0.004)


def test_the_two_bootstrap_draws_agree_and_rows_with_no_document_have_no_interval():
    values = np.vstack([(RNG.random(500) < p).astype(float) for p in (0.2, 0.5, 0.9)] + [np.full(500, np.nan)])
    present = ~np.isnan(values)
    rng = np.random.default_rng(0)
    counted = bootstrap._multinomial_means(values, present, np.array([0.0, 1.0]), 20_000, rng)
    matrix = bootstrap._matrix_means(values, present, 20_000, rng)
    for row in range(3):
        np.testing.assert_allclose(np.percentile(counted[row], [2.5, 97.5]), np.percentile(matrix[row], [2.5, 97.5]),
                                   atol=0.006)
    low, high = bootstrap.mean_intervals(values)
    assert np.isnan(low[3]) and np.isnan(high[3]) and (low[:3] < values[:3].mean(axis=1)).all()
    scores = RNG.normal(0.5, 0.2, (2, 500))  # continuous: a few rows read the drawn values, many take products
    drawn = bootstrap._drawn_means(scores, 20_000, rng)
    matrix = bootstrap._matrix_means(scores, ~np.isnan(scores), 20_000, rng)
    for row in range(2):
        np.testing.assert_allclose(np.percentile(drawn[row], [2.5, 97.5]), np.percentile(matrix[row], [2.5, 97.5]),
                                   atol=0.003)


def test_paired_tests_by_hand():
    # five documents; A right on 0, 1, 4; B on 0, 2, 3, 4; document 5 scored by A only
    a = np.array([1, 1, 0, 0, 1, 1.0])
    b = np.array([1, 0, 1, 1, 1, np.nan])
    row = paired_tests(a, b, binary=True).iloc[0]
    assert (row.n_docs, row.a_correct, row.b_correct, row.only_a, row.only_b) == (5, 3, 4, 1, 2)
    assert row["diff"] == pytest.approx(0.2) and row.test == "mcnemar-exact"
    assert row.p_value == pytest.approx(1.0)  # 1 against 2: 2 x P(X <= 1 | n = 3) = 2 x 4 / 8
    assert row.ci_low <= 0.2 <= row.ci_high
    continuous = paired_tests(a[:5] * 0.3, b[:5] * 0.5 + 0.1, binary=False).iloc[0]
    assert continuous.test == "paired-t" and pd.isna(continuous.only_a)
    assert continuous.p_value == pytest.approx(stats.ttest_rel(b[:5] * 0.5 + 0.1, a[:5] * 0.3).pvalue, rel=1e-9)


def test_unpaired_tests_interval_and_label():
    row = unpaired_tests([0.60], [0.01], [0.65], [0.012]).iloc[0]
    se = math.hypot(0.01, 0.012)
    assert row["diff"] == pytest.approx(0.05) and row.test == "unpaired-z" and pd.isna(row.n_docs)
    assert (row.ci_low, row.ci_high) == pytest.approx((0.05 - stats.norm.ppf(0.975) * se,
                                                        0.05 + stats.norm.ppf(0.975) * se))


def _scores(values: dict[str, list[float]], steps: list[int], family: str = "pythia") -> pd.DataFrame:
    rows = [{"source": "published", "family": family, "task": "piqa", "metric": "acc", "shots": 0, "model": model,
             "step": step, "value": v} for model, vs in values.items() for step, v in zip(steps, vs)]
    return pd.DataFrame(rows)


def test_noise_and_signal_by_hand_and_by_the_papers_formula():
    # two models, four checkpoints; the last three are measured (last=3)
    frame = _scores({"pythia-70m": [0.1, 0.5, 0.6, 0.7], "pythia-160m": [0.2, 0.8, 0.8, 0.9]}, [0, 1000, 2000, 3000])
    noise = noise_by_model(frame, last=3).set_index("model")
    # ddof 0, as the paper's code
    assert noise.loc["pythia-70m", "noise"] == pytest.approx(np.std([0.5, 0.6, 0.7]) / 0.6)
    assert noise.loc["pythia-70m", "points"] == 3 and noise.loc["pythia-70m", "first_step"] == 1000
    row = signal_noise(frame, last=3).iloc[0]
    assert row.step == 3000 and row.models == 2
    assert row.signal == pytest.approx((0.9 - 0.7) / 0.8)  # (max - min) / mean at the last step
    mean_noise = (np.std([0.5, 0.6, 0.7]) / 0.6 + np.std([0.8, 0.8, 0.9]) / np.mean([0.8, 0.8, 0.9])) / 2
    assert row.noise == pytest.approx(mean_noise) and row.snr == pytest.approx(row.signal / mean_noise)
    # Heineman et al.'s signal: the largest |m_j - m_k| over pairs, over the mean
    finals = np.array([0.7, 0.9])
    assert row.signal == pytest.approx(max(abs(x - y) for x in finals for y in finals) / finals.mean())


def test_signal_is_taken_where_every_model_has_a_score():
    frame = _scores({"pythia-70m": [0.5, 0.6, 0.7], "pythia-160m": [0.6, 0.8, 0.8]}, [1000, 2000, 3000])
    frame = frame[~((frame["model"] == "pythia-160m") & (frame["step"] == 3000))]  # still running
    row = signal_noise(frame).iloc[0]
    assert row.step == 2000 and row.signal == pytest.approx(0.2 / 0.7)
    one = signal_noise(_scores({"opt-125m": [0.6]}, [None], family="opt")).iloc[0]  # type: ignore[list-item]
    assert pd.isna(one.step) and pd.isna(one.signal) and pd.isna(one.noise)


def test_smoothing_averages_the_last_evaluated_checkpoints():
    curve = pd.DataFrame({"step": [4, 0, 1, 2], "value": [0.8, 0.2, 0.4, 0.6]})
    out = smoothed(curve, window=3)
    assert out["step"].tolist() == [0, 1, 2, 4]
    np.testing.assert_allclose(out["smoothed"], [0.2, 0.3, 0.4, 0.6])
    assert out["smoothed_points"].tolist() == [1, 2, 3, 3]


def test_fits_match_scipy_and_numpy():
    x = np.log10([7e7, 1.6e8, 4.1e8, 1e9, 1.4e9, 2.8e9])
    y = np.array([0.42, 0.47, 0.55, 0.60, 0.62, 0.66])
    line = fit.fit(x, y, "linear")
    assert (line.b, line.a) == pytest.approx(tuple(np.polyfit(x, y, 1)), rel=1e-10)
    power = fit.fit(x, [130.0, 38.0, 10.8, 7.9, 6.1, 5.0], "power")
    assert (power.b, power.a) == pytest.approx(tuple(np.polyfit(x, np.log([130.0, 38.0, 10.8, 7.9, 6.1, 5.0]), 1)))
    floor = 0.25
    curve = fit.fit(x, y, "logistic", floor)
    theirs, _ = optimize.curve_fit(lambda x, a, b: floor + (1 - floor) / (1 + np.exp(-(a + b * x))), x, y, p0=[-10, 1])
    assert (curve.a, curve.b) == pytest.approx(tuple(theirs), rel=1e-5)
    assert curve.predict(x) == pytest.approx(floor + (1 - floor) / (1 + np.exp(-(theirs[0] + theirs[1] * x))))


def test_band_is_seeded_and_holds_the_fit():
    x = np.log10([7e7, 1.6e8, 4.1e8, 1e9, 1.4e9, 2.8e9])
    y = np.array([0.42, 0.47, 0.55, 0.60, 0.62, 0.66])
    at = np.log10([6.9e9, 1.2e10])
    first = fit.band(x, y, "logistic", at, floor=0.25)
    pd.testing.assert_frame_equal(first, fit.band(x, y, "logistic", at, floor=0.25))
    assert (first["low"] < first["predicted"]).all() and (first["predicted"] < first["high"]).all()
    assert first["predicted"].tolist() == pytest.approx(fit.fit(x, y, "logistic", 0.25).predict(at).tolist())


def test_the_logistic_fit_stops_once_converged_where_every_step_would_end(monkeypatch):
    x = np.log10([7e7, 1.6e8, 4.1e8, 1e9, 1.4e9, 2.8e9])
    at = np.log10([6.9e9, 1.2e10])
    for y, floor in (([0.42, 0.47, 0.55, 0.60, 0.62, 0.66], 0.25), ([0.5, 0.52, 0.55, 0.6, 0.7, 0.8], 0.5)):
        early = fit.band(x, np.array(y), "logistic", at, floor=floor)
        monkeypatch.setattr(fit, "_PATIENCE", fit._ITERATIONS + 1)  # every step taken
        every = fit.band(x, np.array(y), "logistic", at, floor=floor)
        monkeypatch.undo()
        np.testing.assert_allclose(early.to_numpy(), every.to_numpy(), rtol=0, atol=1e-9)


def test_compute_is_six_times_parameters_times_tokens():
    from evalsuite.records import Model

    x = fit.log_size(["pythia-70m", "pythia-1b"], [1000, 143000], axis="compute")
    # the Pythia model card: 70,426,624 and 1,011,781,632 parameters, 2,097,152 tokens a step
    expected = [6 * 70_426_624 * 1000 * 2_097_152, 6 * 1_011_781_632 * 143000 * 2_097_152]
    np.testing.assert_allclose(x, np.log10(np.array(expected, dtype=float)))
    assert np.isnan(fit.log_size(["pythia-demo"])[0])  # a model the catalog does not know
    sized = {"my-run": Model("my-run", "mine", params=1000)}  # its size counted, its tokens unknown
    assert fit.log_size(["my-run"], facts=sized)[0] == pytest.approx(3.0)
    assert np.isnan(fit.log_size(["my-run"], [10], axis="compute", facts=sized)[0])


def test_backtest_recovers_an_exact_curve():
    models = ["pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b", "pythia-1.4b", "pythia-2.8b",
              "pythia-6.9b", "pythia-12b"]
    x = fit.log_size(models)
    values = 0.25 + 0.75 / (1 + np.exp(-(-12 + 1.3 * x)))
    scores = pd.DataFrame({"task": "arc_easy", "metric": "acc", "model": models * 2, "step": [143000] * 8 + [0] * 8,
                           "value": list(values) + [0.25] * 8})
    errors = fit.backtest(scores, models[:6], models[6:], 143000)
    assert set(errors["form"]) == {"logistic", "linear"}
    assert errors.loc[errors["form"] == "logistic", "abs_error"].max() < 1e-6
    assert errors.loc[errors["form"] == "linear", "abs_error"].min() > 1e-3
