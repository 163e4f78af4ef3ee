"""Warm start: a new task's searcher learns an earlier task's results before its first proposal
(from a task of the same work dir or an exported archive), with the space changes handled as
docs/commands.md states; the results are not run again and do not count toward max_tries."""
from __future__ import annotations

import pytest
from helpers import write_files
from helpers.cli import gml

from gml_ray.config import load_config
from gml_ray.engine.warm_start import WarmStart
from gml_ray.schedulers import NaiveScheduler
from gml_ray.searchers import SkoptSearcher
from gml_ray.vocab import JobStatus

OBJECTIVE = {"objective.py": """
    import gml_ray
    def trial(config):
        x, y = config["x"], config.get("y", 0.0)
        gml_ray.report(loss=(x - 0.3) ** 2 + (y + 0.2) ** 2 + 0.1 * config.get("z", 0), step=0)
"""}

OLD = """
task:
  function: "objective:trial"
  search_args:
    - {type: Real, name: x, data: [-1, 1]}
    - {type: Real, name: y, data: [-1, 1]}
    - {type: Categorical, name: z, data: [0, 1]}
searcher: {type: RandomSearcher, seed: 4, reward_attribute: loss, optimize_mode: minimize}
scheduler: {parallel_size: 2, stop_criterion: {max_tries: 8}}
"""

NEW = """
task:
  function: "objective:trial"
  search_args:
    - {type: Real, name: x, data: [-1, 1]}
    - {type: Real, name: y, data: [-1, 1]}
    - {type: Categorical, name: z, data: [0, 1]}
searcher: {type: SkoptSearcher, random_state: 1, n_initial_points: 5, reward_attribute: loss, optimize_mode: minimize}
scheduler: {parallel_size: 1, stop_criterion: {max_tries: 2}}
"""


def run(tmp_path, name: str, text: str, task: str, **kwargs):
    code = tmp_path / name
    write_files(code, {"search_config.yaml": text, **OBJECTIVE})
    scheduler = NaiveScheduler(str(tmp_path / "wd"), load_config(str(code / "search_config.yaml")),
                               task=task, **kwargs)
    store = scheduler.prepare()
    scheduler.run()
    return store


def test_skopt_started_from_an_earlier_task_is_model_based_from_its_first_ask(ray_session, tmp_path):
    store = run(tmp_path, "old", OLD, "old")
    old = [(j["config"], j["reward"]) for j in store.jobs("old")]
    assert len(old) == 8 and all(r is not None for _, r in old)

    run(tmp_path, "new", NEW, "new", warm_start_from="old")
    jobs = store.jobs("new")
    assert len(jobs) == 2  # max_tries counts only the new task's own jobs
    warm = WarmStart.from_task(store.require_task("new"))
    assert warm is not None and warm.sources == ["old"] and warm.told == 8 and not warm.skipped

    # the same searcher told the same 8 results proposes what the task ran first: from the model
    # (8 results >= n_initial_points), not the random start a cold search begins with
    told = SkoptSearcher(load_config(str(tmp_path / "new" / "search_config.yaml")).search_space(),
                         random_state=1, n_initial_points=5, optimize_mode="minimize")
    for config, reward in old:
        told.update(config, reward)
    first = told.get_config()
    assert told._opt._n_initial_points <= 0  # model-based
    assert jobs[0]["config"] == pytest.approx(first)
    cold = SkoptSearcher(told.space, random_state=1, n_initial_points=5, optimize_mode="minimize").get_config()
    assert jobs[0]["config"] != pytest.approx(cold)
    # no earlier config is run again
    assert not {str(sorted(j["config"].items())) for j in jobs} & {str(sorted(c.items())) for c, _ in old}


def test_space_changes_archives_and_resume(ray_session, tmp_path):
    store = run(tmp_path, "old", OLD, "old")
    olds = store.jobs("old")
    # the new space: y gone (dropped), w new with one value (filled), x narrowed (some outside)
    changed = (NEW.replace("    - {type: Real, name: y, data: [-1, 1]}\n", "")
               .replace("data: [-1, 1]}", "data: [-1, 0.5]}")
               .replace("    - {type: Categorical, name: z, data: [0, 1]}\n",
                        "    - {type: Categorical, name: z, data: [0, 1]}\n    - {type: Categorical, name: w, data: [7]}\n"))
    run(tmp_path, "new", changed, "new", warm_start_from="old")
    warm = WarmStart.from_task(store.require_task("new"))
    outside = sum(1 for j in olds if j["config"]["x"] > 0.5)
    assert 0 < outside < 8  # the seed gives both kinds
    assert warm.skipped == {"outside the space": outside} and warm.told == 8 - outside
    assert warm.dropped == {"y"}

    # a new arg without a single value: every result lacks it
    lacking = NEW.replace("    - {type: Categorical, name: z, data: [0, 1]}\n",
                          "    - {type: Categorical, name: z, data: [0, 1]}\n    - {type: Int, name: v, data: [1, 3]}\n")
    run(tmp_path, "new2", lacking, "new2", warm_start_from="old")
    warm = WarmStart.from_task(store.require_task("new2"))
    assert warm.told == 0 and warm.skipped == {"lack arg v": 8}

    # from an export of the old task: the same results
    tar = tmp_path / "old.tar.gz"
    assert gml("ctl", "export", "--task", "old", "--tar-path", str(tar), "--workdir", str(tmp_path / "wd")).returncode == 0
    run(tmp_path, "new3", NEW, "new3", warm_start_from=str(tar))
    assert WarmStart.from_task(store.require_task("new3")).told == 8

    # --resume of a warm-started task tells them again (its searcher is new), then its own jobs
    store.update_job("new3", 2, status=JobStatus.ERROR)
    code = tmp_path / "new3"
    again = NaiveScheduler(str(tmp_path / "wd"), load_config(str(code / "search_config.yaml")), task="new3",
                           resume=True)
    again.prepare()
    again.run()
    assert WarmStart.from_task(store.require_task("new3")).told == 8
    assert [j["status"] for j in store.jobs("new3")] == [JobStatus.FINISHED] * 2


def test_a_bad_source_is_one_line_and_exit_2(tmp_path):
    write_files(tmp_path, {"search_config.yaml": NEW, **OBJECTIVE})
    gml("init", "--workdir", "wd", cwd=tmp_path)
    for source, message in [("nosuch", "no task named 'nosuch'"), ("gone.tar.gz", "no such archive: gone.tar.gz")]:
        result = gml("run", "search_config.yaml", "--task", "t", "--workdir", "wd", "--warm-start-from", source,
                     cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
