"""The benchmarks behind the engine's choices run (quick modes: the code path, never the numbers)."""

from conftest import run_quick


def test_bench_shards_measures_every_choice(tmp_path):
    record = run_quick("bench_shards", tmp_path / "shards.json", package="benchmarks")
    assert record["quick"] is True
    row = record["results"]["shard_8"]
    assert set(row["shards"]) == {"alone_ms", "beside_a_thread_ms", "the_thread_ms", "beside_a_process_ms",
                                  "the_process_ms"}
    assert set(row["windows"]) == {"C1", "C3"} and set(row["forward_bands"]) == {"C1", "C3"}
    figures = [*row["shards"].values(), *(v for r in row["windows"].values() for v in r.values()),
               *(v for r in row["forward_bands"].values() for v in r.values())]
    assert all(0 < v < 10_000 for v in figures)
    assert set(record["results"]["predictions"]["images_300"]) == {"shards_in_turn_ms", "shard_in_a_worker_ms",
                                                                    "one_pass_ms"}


def test_bench_memory_counts_the_process_tree(tmp_path):
    record = run_quick("bench_memory", tmp_path / "memory.json", package="benchmarks")
    results = record["results"]
    assert results["last_line"].startswith("peak memory (max RSS)")
    assert 20 < results["max_rss_mib"] < 4000 and 20 < results["peak_mib"] < 4000
