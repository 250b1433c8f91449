"""``make bench``: the two performance benchmarks, each measured against its reference in one run.

1. Feature rebuild against a hand-written DuckDB query computing the same receivables aggregates
   (:mod:`bench.bench_features`; target at most about 2x).
2. Scoring open orders end to end against a bare LightGBM predict on the same matrix
   (:mod:`bench.bench_scoring`; target at most about 3x).
3. Parsing each DAG file against a one-task DAG (:mod:`bench.bench_dags`; target under 0.5 s each).

Defaults: 1M orders and 2M receivable lines; ``--lines 10000000`` gives the 10M-line target case.
"""

from __future__ import annotations

import argparse
import logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument(
        "--lines", type=int, default=2_000_000, help="receivable lines; 10M is the target case"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("features", "scoring", "dags"), help="run one of the two")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from bench import bench_dags, bench_features, bench_scoring
    from include.runtime import tune_batch_memory

    # As holdcast's feature, training and scoring tasks do (HOLDCAST_BATCH_MEMORY): the references
    # run in the same process, so they are measured under the same allocator.
    tune_batch_memory()

    if args.only in (None, "dags"):
        print("\n" + bench_dags.report(bench_dags.run()) + "\n", flush=True)

    if args.only in (None, "features"):
        figures = bench_features.run(args.orders, args.lines, args.seed)
        print(
            f"\nfeature benchmark: {figures['orders']:,} orders, {figures['lines']:,} receivable lines\n"
            f"  features, receivables family   {figures['features_receivables_s']:8.2f} s\n"
            f"  features, all families         {figures['features_full_s']:8.2f} s\n"
            f"  DuckDB range-join query        {figures['sql_range_join_s']:8.2f} s\n"
            + (
                f"  DuckDB window + ASOF query     {figures['sql_asof_s']:8.2f} s\n"
                if "sql_asof_s" in figures
                else ""
            )
            + f"  ratio receivables / best SQL   {figures['ratio_receivables']:8.2f} x   (target <= 2x)\n"
            f"  ratio all families / best SQL  {figures['ratio_full']:8.2f} x\n"
            f"  peak memory                    {figures['peak_rss_gib']:8.2f} GiB\n",
            flush=True,
        )
    if args.only in (None, "scoring"):
        print("\n" + bench_scoring.report(bench_scoring.run(args.orders, args.lines, args.seed)) + "\n")


if __name__ == "__main__":
    main()
