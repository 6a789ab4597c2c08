"""Command line: ``python -m embmap inspect PATH``, ``convert OLD NEW``, ``fetch CONFIG``, ``times EXP_DIR`` and
``reference DOC`` (also the ``embmap`` script)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="embmap", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="describe a Zarr store written by the workflow")
    p.add_argument("path", help="an embedding store, block store or map store (a .zarr folder)")
    p.add_argument("--pair", action="store_true",
                   help="PATH is a map store (maps/METHOD/SOURCE/TARGET.zarr): show provenance and fit quality")
    p.add_argument("--no-stats", action="store_true", help="skip value statistics (no data read)")
    c = sub.add_parser("convert", help="rewrite an embedding store (a Zarr v2 store too) as an embmap Zarr v3 store")
    c.add_argument("source", help="the store to read (left as it is)")
    c.add_argument("destination", help="the new store, e.g. DIR/test.zarr (must not exist)")
    c.add_argument("--chunk-rows", type=int, default=None, help="samples per chunk (default: the source's)")
    c.add_argument("--drop", action="append", default=[], metavar="ATTRIBUTE",
                   help="leave this root attribute out (repeatable), e.g. one the store contract refuses")
    f = sub.add_parser("fetch", help="download every TF Hub model of a config into TFHUB_CACHE_DIR and the ImageNet "
                                     "weights of its Keras applications into KERAS_HOME (needs network)")
    f.add_argument("config", help="a config file, e.g. configs/imagenet.yaml")
    t = sub.add_parser("times", help="where a run's time went: every job's benchmark of an experiment folder")
    t.add_argument("exp_dir", help="an experiment's results folder, e.g. results/digits")
    t.add_argument("--top", type=int, default=15, help="slowest jobs to list (default 15)")
    r = sub.add_parser("reference", help="rewrite the configuration reference generated from the schema")
    r.add_argument("doc", help="the page holding it between its markers: docs/configuration.md")
    args = parser.parse_args(argv)

    if args.command == "times":
        from .timings import TimingsError, report

        try:
            print(report(args.exp_dir, args.top))
        except TimingsError as e:
            print(f"embmap times: {e}", file=sys.stderr)
            return 2
        return 0

    if args.command == "reference":
        from .config import write_reference

        write_reference(args.doc)
        print(f"wrote the configuration reference into {args.doc}")
        return 0

    if args.command == "fetch":
        from .config import ConfigError
        from .models import NetworkError, hub, keras

        try:
            for handle, path in hub.fetch(args.config) + keras.fetch(args.config):
                print(f"{handle} -> {path}")
        except (NetworkError, ConfigError) as e:
            print(f"embmap fetch: {e}", file=sys.stderr)
            return 2
        return 0

    from . import inspection
    from .stores import StoreError, convert

    try:
        if args.command == "convert":
            convert(args.source, args.destination, chunk_rows=args.chunk_rows, drop=args.drop)
            print(f"wrote {args.destination}")
        elif args.pair:
            print(inspection.describe_map(args.path))
        else:
            print(inspection.describe(args.path, stats=not args.no_stats))
    except StoreError as e:
        print(f"embmap {args.command}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
