"""Command line: ``python -m embmap inspect PATH`` and ``python -m embmap fetch CONFIG`` (also the ``embmap`` script)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="embmap", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="describe a Zarr store written by the workflow")
    p.add_argument("path", help="an embedding store, block store or map store (a .zarr folder)")
    p.add_argument("--pair", action="store_true",
                   help="PATH is a map store (maps/SOURCE/TARGET.zarr): show provenance and fit quality")
    p.add_argument("--no-stats", action="store_true", help="skip value statistics (no data read)")
    f = sub.add_parser("fetch", help="download every TF Hub model of a config into TFHUB_CACHE_DIR and the ImageNet "
                                     "weights of its Keras applications into KERAS_HOME (needs network)")
    f.add_argument("config", help="a config file, e.g. configs/imagenet.yaml")
    args = parser.parse_args(argv)

    if args.command == "fetch":
        from .models import NetworkError, hub, keras

        try:
            for handle, path in hub.fetch(args.config) + keras.fetch(args.config):
                print(f"{handle} -> {path}")
        except NetworkError as e:
            print(f"embmap fetch: {e}", file=sys.stderr)
            return 2
        return 0

    from . import inspection
    from .stores import StoreError

    try:
        if args.pair:
            print(inspection.describe_map(args.path))
        else:
            print(inspection.describe(args.path, stats=not args.no_stats))
    except StoreError as e:
        print(f"embmap inspect: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
