"""Stable choices (services/common/stable.py): the same key, the same pick; ties spread over the names."""

from services.common.stable import stable_index, stable_min


def test_the_lowest_score_wins_whatever_the_key():
    for key in ("a", "b", "now-job", "start-job"):
        assert stable_min(key, {"carbon-cn": 0.5, "carbon-jp": 0.2, "carbon-kr": 0.9}) == "carbon-jp"


def test_ties_go_by_the_key_in_name_order_not_to_the_first_name():
    names = ["carbon-cn", "carbon-jp", "carbon-kr"]
    idle = {"carbon-kr": 0.0, "carbon-cn": 0.0, "carbon-jp": 0.0}  # insertion order does not matter
    picks = {key: stable_min(key, idle) for key in ("now-job", "job-now", "start-job")}
    assert picks == {key: names[stable_index(key, 3)] for key in picks}
    assert set(picks.values()) == set(names)
    # only the tied names take part
    assert stable_min("now-job", {"carbon-cn": 0.0, "carbon-jp": 0.0, "carbon-kr": 0.4}) in {
        "carbon-cn",
        "carbon-jp",
    }
