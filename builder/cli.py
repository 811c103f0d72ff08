"""The builder's command line: ``python -m builder <command> ...``.

Commands::

    python -m builder synth data/raw --scale demo            # synthetic raw sources (the embedded default)
    python -m builder lock dancetrack                        # record digests of the locked val/test sequences
    python -m builder build conf/curricula/demo/stage1.toml  # -> data/builds/demo_stage1
    python -m builder verify data/builds/demo_stage1         # re-check digests, links, counts, COCO JSON
    python -m builder stats mot17 ../shared/realdata/mot17-mini [--json]
    python -m builder diagnose data/builds/demo_stage1       # data diagnostics (text summary + PNG)

DATA_ROOT (default data/raw) and BUILD_ROOT (default data/builds) are read from the environment and
overridden by ``--data-root`` / ``--build-root``. Exit codes (builder/errors.py): 0 success, 1 ``verify``
found problems, 2 bad input (a one-line ``error:`` message on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from builder.errors import ArgumentParser, run_cli

_ERR = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)  # messages hold [sources.x]
# tables keep a readable width when the output is piped (rich falls back to 80 columns there)
_OUT = Console(highlight=False, soft_wrap=True, markup=False, width=None if sys.stdout.isatty() else 160)


def _cmd_build(args: argparse.Namespace) -> int:
    from builder.build import build
    from builder.formats.build_layout import read_build_manifest

    out = build(args.recipe, data_root=args.data_root, build_root=args.build_root, seed=args.seed,
                out_name=args.out, progress=not args.quiet and sys.stdout.isatty())
    manifest = read_build_manifest(out)
    for split, per_source in manifest["counts"].items():
        parts = ", ".join(f"{s} {c['sequences']} seqs / {c['frames']} frames" for s, c in per_source.items())
        _OUT.print(f"{split:5s}: {parts or '-'}")
    if manifest["warnings"]:
        _OUT.print("warnings: " + ", ".join(f"{k}={v}" for k, v in manifest["warnings"].items()))
    _OUT.print(f"built {out}")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from builder.stats import compute_stats, render_stats

    stats = compute_stats(args.source, args.root, classmap_path=args.classmap, progress=not args.json)
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        _OUT.print(render_stats(stats))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from builder.verify import verify_build

    report = verify_build(args.build)
    for note in report.notes:
        _OUT.print(f"note: {note}")
    if report.problems:
        _ERR.print(f"{args.build}: {len(report.problems)} problem(s):")
        for p in report.problems:
            _ERR.print(f"  - {p}")
        return 1
    _OUT.print(f"{args.build}: OK ({report.sequences} sequences, {report.frames} frames)")
    return 0


def _cmd_lock(args: argparse.Namespace) -> int:
    from builder.build import data_root_default
    from builder.classmap import ClassMap, default_classmap_path
    from builder.manifest import default_manifest_path, lock_manifest
    from builder.records import WarningCounter
    from builder.sources import get_source

    root = Path(args.root) if args.root else (Path(args.data_root) if args.data_root else data_root_default()) / args.source
    path = Path(args.manifest) if args.manifest else default_manifest_path(args.source)
    adapter_cls = get_source(args.source)  # unknown name: error listing the registered sources
    classmap = ClassMap.load(args.classmap or default_classmap_path(args.source), args.classes)
    adapter = adapter_cls(root, classmap, WarningCounter())
    cmd = " ".join(["python -m builder lock", args.source]
                   + [f"--{k} {v}" for k, v in (("val", args.val), ("test", args.test), ("seed", args.seed),
                                                       ("split", args.split))
                      if v is not None])
    result = lock_manifest(adapter, path, source=args.source, classes=args.classes, n_val=args.val,
                           n_test=args.test, seed=args.seed, split=args.split, force=args.force,
                           created_by=cmd)
    m = result.manifest
    _OUT.print(f"{path}: {result.status} ({len(m.val)} val + {len(m.test)} test sequences of "
               f"{args.source}/{m.official_split_of_locked}, seed {m.seed})")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from builder.synth import get_scale, write_synth

    written = write_synth(Path(args.out), scale=args.scale, seed=args.seed, sources=args.sources,
                          overwrite=args.overwrite, progress=not args.quiet and sys.stdout.isatty())
    for source, path in written.items():
        splits = ", ".join(f"{p.split} {p.sequences}x{p.frames}" for p in get_scale(args.scale).plan(source))
        _OUT.print(f"{source}: {path} ({splits} sequences x frames)")
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from builder.diagnose import write_diagnostics

    return write_diagnostics(Path(args.build), out=args.out, images_per_seq=args.images_per_seq)


def _add_synth(sub) -> None:
    from builder.synth import SCALES, SOURCES

    p = sub.add_parser("synth", help="write synthetic raw datasets in the official layouts")
    p.add_argument("out", help="output folder; sources go to <out>/<source>/ (e.g. data/synth)")
    p.add_argument("--scale", choices=list(SCALES), default="demo",
                   help="data size: tiny (what the tests use) or demo (what make demo trains on) (default: demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES),
                   help="sources to write (default: all)")
    p.add_argument("--overwrite", action="store_true", help="replace existing <out>/<source> folders")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)


def _add_build(sub) -> None:
    p = sub.add_parser("build", help="build a recipe into BUILD_ROOT/<name>")
    p.add_argument("recipe", help="recipe TOML, e.g. conf/curricula/stage1.toml")
    p.add_argument("--data-root", help="base of relative source roots (default $DATA_ROOT or data/raw)")
    p.add_argument("--build-root", help="where builds go (default $BUILD_ROOT or data/builds)")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.add_argument("--out", help="override the build name (output directory under the build root)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_build)


def _add_lock(sub) -> None:
    p = sub.add_parser("lock", help="draw/record the locked val and test sequences of a source")
    p.add_argument("source")
    p.add_argument("--root", help="raw root of the source (default DATA_ROOT/<source>)")
    p.add_argument("--data-root", help="default $DATA_ROOT or data/raw")
    p.add_argument("--manifest", help="manifest path (default manifests/<source>.json)")
    p.add_argument("--classmap", help="class map TOML (default conf/classmaps/<source>.toml)")
    p.add_argument("--classes", nargs="+", default=["person", "vehicle"], help="unified class list")
    p.add_argument("--val", type=int, help="locked val sequences to draw")
    p.add_argument("--test", type=int, help="locked test sequences to draw")
    p.add_argument("--seed", type=int, help="seed of the draw")
    p.add_argument("--split", help="official split to draw from (default val; mot17 has none: use train)")
    p.add_argument("--force", action="store_true", help="allow changing an existing locked manifest")
    p.set_defaults(func=_cmd_lock)


def build_parser() -> ArgumentParser:
    """The argparse parser of ``python -m builder`` (one subcommand per command)."""
    parser = ArgumentParser(prog="python -m builder", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_build(sub)
    p = sub.add_parser("stats", help="per-split counts of a raw source")
    p.add_argument("source")
    p.add_argument("root")
    p.add_argument("--classmap", help="class map TOML (default conf/classmaps/<source>.toml)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_stats)
    p = sub.add_parser("verify", help="re-check a build's digests, links, counts and COCO JSON")
    p.add_argument("build")
    p.set_defaults(func=_cmd_verify)
    _add_lock(sub)
    _add_synth(sub)
    p = sub.add_parser("diagnose", help="data diagnostics of a build (text summary and a PNG)")
    p.add_argument("build")
    p.add_argument("--out", help="output folder or .png path (default <build>/diagnostics)")
    p.add_argument("--images-per-seq", type=int, default=5,
                   help="frames sampled per sequence for image statistics (default 5)")
    p.set_defaults(func=_cmd_diagnose)
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 verify problems, 2 bad input, 130 interrupted)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
