"""The demo the app opens on: the shipped JSON is the cluster the tutorial YAML makes."""

from __future__ import annotations

from sim.cluster.load import DEMO_JSON, demo_cluster, demo_cluster_from_yaml, demo_json


def test_the_demo_json_is_the_cluster_the_tutorial_yaml_makes() -> None:
    # The clusters, not the texts: a model field added with its default needs no new JSON.
    assert demo_cluster() == demo_cluster_from_yaml(), (
        f"{DEMO_JSON.name} is out of date with demo_cluster.yaml or the model: "
        "run `.venv/bin/python -m sim.cluster.load` to write it again"
    )
    assert demo_json().startswith("{")
