"""Splink 5 on DuckDB, and plain DuckDB SQL, on the rows `bos-bench resolve` links.

Both read FILE.normalized.csv, written by `bos-bench resolve --write-normalized`:
one column per identifier kind, values already normalized by BOS (e-mails
trimmed and lowercased, phones in E.164, invalid values left empty), so that
all engines link exactly the same identifiers and the comparison measures
resolution alone. Deterministic rules: two rows are linked when they share a
value in any identifier column; the partition is the transitive closure.

Timed per engine: loading the CSV into DuckDB, linking (Splink:
`linker.inference.deterministic_link()`), clustering (Splink:
`linker.clustering.cluster_pairwise_predictions_at_threshold`), on a DuckDB
connection limited to --threads threads, --repeat times (the median is
reported). Writing the partitions (row,cluster) afterwards is not timed.
Prints one JSON line per engine.
"""

import argparse
import json
import logging
import statistics
import time

import duckdb


def connect(threads):
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    return con


def load(con, path):
    # All identifiers are strings; unique_id is the row number.
    con.execute(
        f"""CREATE TABLE contacts AS
            SELECT * REPLACE (CAST(unique_id AS BIGINT) AS unique_id)
            FROM read_csv('{path}', header = true, all_varchar = true)"""
    )
    cols = [r[0] for r in con.execute("DESCRIBE contacts").fetchall()]
    return [c for c in cols if c != "unique_id"]


def run_splink(path, threads, out):
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    con = connect(threads)
    t0 = time.perf_counter()
    cols = load(con, path)
    t1 = time.perf_counter()
    db_api = DuckDBAPI(connection=con)
    df = db_api.register("contacts")
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[block_on(c) for c in cols],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(df, settings, log_level=logging.WARNING)
    pairs = linker.inference.deterministic_link()
    t2 = time.perf_counter()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pairs)
    t3 = time.perf_counter()
    n_pairs = con.execute(f"SELECT count(*) FROM {pairs.physical_name}").fetchone()[0]
    con.execute(
        f"COPY (SELECT unique_id AS row, cluster_id AS cluster FROM {clusters.physical_name} ORDER BY 1)"
        f" TO '{out}' (HEADER, DELIMITER ',')"
    )
    n_clusters = con.execute(
        f"SELECT count(DISTINCT cluster_id) FROM {clusters.physical_name}"
    ).fetchone()[0]
    return {
        "engine": "splink",
        "load_s": t1 - t0,
        "link_s": t2 - t1,
        "cluster_s": t3 - t2,
        "total_s": t3 - t0,
        "pairs": n_pairs,
        "clusters": n_clusters,
    }


def run_sql(path, threads, out):
    """Connected components in plain SQL. The identifier strings are grouped
    once: every row gets an edge to the smallest row sharing each of its
    identifiers. Then labels (smallest row reached) propagate over those
    integer edges in both directions, with pointer jumping (a row takes its
    label's label), until nothing changes."""
    con = connect(threads)
    t0 = time.perf_counter()
    cols = load(con, path)
    t1 = time.perf_counter()
    union = " UNION ALL ".join(
        f"SELECT unique_id AS r, {i} AS k, {c} AS v FROM contacts WHERE {c} IS NOT NULL"
        for i, c in enumerate(cols)
    )
    con.execute(
        f"""CREATE TABLE e AS
            SELECT r, min(r) OVER (PARTITION BY k, v) AS m FROM ({union})"""
    )
    con.execute("DELETE FROM e WHERE r = m")
    con.execute("CREATE TABLE lab AS SELECT unique_id AS r, unique_id AS l FROM contacts")
    iterations = 0
    while True:
        iterations += 1
        con.execute(
            """CREATE OR REPLACE TABLE lab_next AS
               WITH hop AS (
                   SELECT e.r AS n, lab.l FROM e JOIN lab ON lab.r = e.m
                   UNION ALL
                   SELECT e.m AS n, lab.l FROM e JOIN lab ON lab.r = e.r),
               best AS (SELECT n, min(l) AS l FROM hop GROUP BY n),
               stepped AS (
                   SELECT lab.r, least(lab.l, coalesce(best.l, lab.l)) AS l
                   FROM lab LEFT JOIN best ON best.n = lab.r)
               SELECT s.r, least(s.l, j.l) AS l FROM stepped s JOIN stepped j ON j.r = s.l"""
        )
        changed = con.execute(
            "SELECT count(*) FROM lab JOIN lab_next USING (r) WHERE lab.l <> lab_next.l"
        ).fetchone()[0]
        con.execute("DROP TABLE lab")
        con.execute("ALTER TABLE lab_next RENAME TO lab")
        if changed == 0:
            break
    t2 = time.perf_counter()
    con.execute(
        f"COPY (SELECT r AS row, l AS cluster FROM lab ORDER BY 1) TO '{out}' (HEADER, DELIMITER ',')"
    )
    n_clusters = con.execute("SELECT count(DISTINCT l) FROM lab").fetchone()[0]
    return {
        "engine": "duckdb-sql",
        "load_s": t1 - t0,
        "link_s": t2 - t1,
        "cluster_s": 0.0,
        "total_s": t2 - t0,
        "iterations": iterations,
        "clusters": n_clusters,
    }


def median_run(fn, repeat, *args):
    """Runs `fn` `repeat` times; the median of each timing (the machine is
    shared, single runs are noisy) and the counts of the last run."""
    runs = [fn(*args) for _ in range(max(1, repeat))]
    out = dict(runs[-1])
    for key in out:
        if key.endswith("_s"):
            out[key] = statistics.median(r[key] for r in runs)
    out["repeat"] = len(runs)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("normalized_csv")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="runs per engine (median reported)")
    ap.add_argument("--splink-out", required=True, help="partition file (row,cluster)")
    ap.add_argument("--sql-out", help="partition file of the plain SQL baseline")
    a = ap.parse_args()
    import splink

    r = median_run(run_splink, a.repeat, a.normalized_csv, a.threads, a.splink_out)
    r.update(splink=splink.__version__, duckdb=duckdb.__version__, threads=a.threads)
    print(json.dumps(r), flush=True)
    if a.sql_out:
        r = median_run(run_sql, a.repeat, a.normalized_csv, a.threads, a.sql_out)
        r.update(duckdb=duckdb.__version__, threads=a.threads)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
