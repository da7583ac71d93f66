"""The OOD verdict ``ood_best``: which score separates each OOD set best, on fixed scores."""
import pytest
import torch

from jemkit.evaluation.ood import auroc, best_scores


def test_best_score_per_set_and_their_mean():
    s_in = torch.arange(10.0)
    scores_out = {"flip": {"logp": torch.arange(10.0) - 5, "maxprob": torch.arange(10.0) - 20, "energy": torch.arange(10.0)},
                  "uniform": {"logp": torch.arange(10.0) + 20, "maxprob": torch.arange(10.0) - 2, "energy": torch.arange(10.0) - 5}}
    aurocs = {name: {s: auroc(s_in, out) for s, out in by_score.items()} for name, by_score in scores_out.items()}
    # AUROC = (pairs with in > out + ½ ties) / 100: shift −5 → (85 + 2.5), shift −2 → (64 + 4), equal → (45 + 5)
    assert aurocs["flip"] == pytest.approx({"logp": 0.875, "maxprob": 1.0, "energy": 0.5})
    assert aurocs["uniform"] == pytest.approx({"logp": 0.0, "maxprob": 0.68, "energy": 0.875})
    best = best_scores(aurocs)
    assert best["flip"] == {"score": "maxprob", "auroc": 1.0}
    assert best["uniform"]["score"] == "energy" and best["uniform"]["auroc"] == pytest.approx(0.875)
    assert best["mean"] == pytest.approx(0.9375)


def test_ties_go_to_the_first_score_and_nan_is_never_best():
    best = best_scores({"a": {"logp": 0.7, "maxprob": 0.9, "gradnorm": 0.9, "energy": float("nan")},
                        "b": {"logp": float("nan"), "maxprob": 0.6}, "c": {"logp": float("nan")}})
    assert best["a"] == {"score": "maxprob", "auroc": 0.9} and best["b"] == {"score": "maxprob", "auroc": 0.6}
    assert best["c"] == {"score": None, "auroc": None}
    assert best["mean"] == pytest.approx(0.75)
    assert best_scores({}) == {"mean": None}


def test_a_set_named_mean_is_refused():
    with pytest.raises(ValueError, match="may not be named 'mean'"):
        best_scores({"mean": {"logp": 0.5}})


def test_the_ood_suite_reports_the_verdict_of_its_own_aurocs(tmp_path):
    from pathlib import Path

    from jemkit.evaluation import evaluate

    m = evaluate(Path(__file__).parent / "fixtures" / "checkpoints-v1" / "jem", tmp_path, suites=["ood"], quick=True,
                 progress=False, device="cpu")
    assert set(m["ood_best"]) == set(m["ood"]) | {"mean"}
    for name, by_score in m["ood"].items():
        assert m["ood_best"][name]["auroc"] == max(by_score.values())
        assert by_score[m["ood_best"][name]["score"]] == m["ood_best"][name]["auroc"]
    assert m["ood_best"]["mean"] == pytest.approx(sum(max(v.values()) for v in m["ood"].values()) / len(m["ood"]))


def test_a_users_ood_set_is_scored_and_judged_beside_the_built_in_ones(tmp_path):
    from pathlib import Path

    import numpy as np

    from jemkit.evaluation import evaluate

    np.savez(tmp_path / "mine.npz", x=np.random.default_rng(0).integers(0, 256, (30, 8, 8), dtype=np.uint8))
    m = evaluate(Path(__file__).parent / "fixtures" / "checkpoints-v1" / "jem", tmp_path / "eval", suites=["ood"],
                 quick=True, progress=False, device="cpu", ood={"mine": f"npz:{tmp_path / 'mine.npz'}"})
    assert set(m["ood"]["mine"]) == {"logp", "maxprob", "gradnorm", "energy"}
    assert m["ood_best"]["mine"]["auroc"] == max(m["ood"]["mine"].values())
