"""Generate the demo ERP world and write it: ``python -m include.demo_erp --erp-url URL --drop-dir DIR``.

Options: ``--orders N`` sizes the world by its order count (default: the default :class:`WorldSpec`),
``--seed S`` and ``--as-of YYYY-MM-DD`` (midnight UTC) fix what is generated; ``--fault-share F``
(default 0.002, 0 for a clean world) makes that share of CRM, bureau and payment rows bad, as real
extracts are (see :mod:`include.demo_erp.faults`).
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from include.demo_erp.faults import inject_faults
from include.demo_erp.generate import WorldSpec, WorldSpecError, generate_world, write_demo_erp

logger = logging.getLogger("include.demo_erp")


def _as_of(raw: str) -> datetime:
    try:
        return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--as-of {raw!r}: expected YYYY-MM-DD") from err


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, generate the world, write it; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m include.demo_erp", description=__doc__.splitlines()[0])
    parser.add_argument("--erp-url", required=True, help="SQLAlchemy URL of the demo ERP database")
    parser.add_argument("--drop-dir", required=True, type=Path, help="folder for the file extracts")
    parser.add_argument("--orders", type=int, help="about this many orders (default: the default spec's)")
    parser.add_argument("--seed", type=int, default=WorldSpec.seed)
    parser.add_argument("--as-of", type=_as_of, default=WorldSpec.as_of, help="YYYY-MM-DD, midnight UTC")
    parser.add_argument("--fault-share", type=float, default=0.002, help="share of rows made bad (0: none)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    started = time.perf_counter()
    try:
        if args.orders is None:
            spec = WorldSpec(seed=args.seed, as_of=args.as_of)
        else:
            spec = WorldSpec.for_orders(args.orders, seed=args.seed, as_of=args.as_of)
    except WorldSpecError as err:
        parser.error(str(err))
    world = generate_world(spec)
    if args.fault_share > 0:
        world, _ = inject_faults(world, share=args.fault_share, seed=spec.seed)
    counts = write_demo_erp(world, args.erp_url, args.drop_dir)
    logger.info(
        "demo ERP ready: seed %d, as of %s, %d customers, %d orders, %d invoices, %d holds in %.1f s",
        spec.seed,
        spec.as_of.date().isoformat(),
        counts["customers"],
        counts["orders"],
        counts["invoices"],
        counts["holds"],
        time.perf_counter() - started,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
